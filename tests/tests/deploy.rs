//! The deployment files: every manifest in deploy/ validates strictly (unknown fields fail)
//! against the Kubernetes schemas that the `kubernetes-validate` package carries (installed in
//! the venv of tests/clients/install-python-sdk.sh, so no network is needed here), the
//! workloads keep their security settings, and the Dockerfile keeps its shape. Docker itself
//! is not needed.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The Kubernetes versions the manifests are validated against: the oldest they support (the
/// `preStop` sleep action is on by default from 1.30) and the newest the package knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// What deploy/ must hold, as (kind, name) of each object.
const EXPECTED: [(&str, &str); 13] = [
    ("Namespace", "mcp-kernel"),
    ("Secret", "mcp-kernel-auth"),
    ("Secret", "mcp-kernel-redis"),
    ("ConfigMap", "mcp-kernel-servers"),
    ("Deployment", "mcp-kernel"),
    ("Service", "mcp-kernel"),
    ("HorizontalPodAutoscaler", "mcp-kernel"),
    ("PodDisruptionBudget", "mcp-kernel"),
    ("NetworkPolicy", "default-deny"),
    ("NetworkPolicy", "mcp-kernel"),
    ("NetworkPolicy", "redis"),
    ("StatefulSet", "redis"),
    ("Service", "redis"),
];

/// deploy/*.yaml, sorted.
fn manifests() -> Vec<PathBuf> {
    let dir = mcpk_tests::workspace_root().join("deploy");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

/// Runs the venv's Python with `args`, asserting success; returns stdout.
fn run_python(args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(mcpk_tests::venv_python())
        .args(args)
        .output()
        .expect("the venv's Python ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python {args:?} failed: {}\nstdout: {stdout}\nstderr: {}\n(a venv without \
         kubernetes_validate is stale: rerun tests/clients/install-python-sdk.sh)",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Every YAML document of deploy/, parsed by PyYAML (a dependency of kubernetes-validate).
fn documents() -> Vec<Value> {
    const TO_JSON: &str = "import json, sys, yaml\n\
        docs = []\n\
        for path in sys.argv[1:]:\n\
        \x20   with open(path) as f:\n\
        \x20       docs += [d for d in yaml.safe_load_all(f) if d is not None]\n\
        print(json.dumps(docs))\n";
    let files = manifests();
    let mut args: Vec<&std::ffi::OsStr> = vec!["-c".as_ref(), TO_JSON.as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let stdout = run_python(&args);
    match serde_json::from_str(&stdout) {
        Ok(Value::Array(docs)) => docs,
        other => panic!("not a list of documents: {other:?}"),
    }
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("deploy/ has no {kind} {name}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn number(value: &Value, what: &str) -> i64 {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{what}: not a number: {value}"))
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1))
        .copied()
}

#[test]
fn the_manifests_validate_strictly_against_the_kubernetes_schemas() {
    let files = manifests();
    for version in KUBERNETES_VERSIONS {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "-m".as_ref(),
            "kubernetes_validate".as_ref(),
            "--strict".as_ref(),
            "--kubernetes-version".as_ref(),
            version.as_ref(),
        ];
        args.extend(files.iter().map(|f| f.as_os_str()));
        let stdout = run_python(&args);
        assert!(
            !stdout.contains("ERROR") && !stdout.contains("WARN"),
            "{version}: {stdout}"
        );
        let passed = stdout.lines().filter(|l| l.contains(" passed ")).count();
        assert_eq!(passed, EXPECTED.len(), "{version}: {stdout}");
        for file in &files {
            let name = file.file_name().and_then(|n| n.to_str()).expect("a name");
            assert!(
                stdout.contains(&format!("{name} passed")),
                "{name}: {stdout}"
            );
        }
    }
}

#[test]
fn the_manifests_hold_every_object_in_one_namespace() {
    let docs = documents();
    assert_eq!(docs.len(), EXPECTED.len(), "{docs:#?}");
    for (kind, name) in EXPECTED {
        let doc = find(&docs, kind, name);
        if kind != "Namespace" {
            assert_eq!(doc["metadata"]["namespace"], "mcp-kernel", "{kind} {name}");
        }
    }
}

/// Pod- and container-level hardening, for each workload.
fn assert_locked_down(workload: &Value) {
    let what = workload["metadata"]["name"].as_str().expect("a name");
    let pod = &workload["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert!(
        number(&pod["securityContext"]["runAsUser"], what) > 0,
        "{what}"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    assert_ne!(pod["hostNetwork"], true, "{what}");
    assert_ne!(pod["hostPID"], true, "{what}");
    let containers = pod["containers"].as_array().expect("containers");
    assert!(!containers.is_empty(), "{what}");
    assert!(
        pod["initContainers"].is_null(),
        "{what}: check init containers too"
    );
    for container in containers {
        let name = container["name"].as_str().expect("a container name");
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{what}/{name}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{what}/{name}");
        assert_eq!(security["runAsNonRoot"], true, "{what}/{name}");
        assert_ne!(security["privileged"], true, "{what}/{name}");
        assert_eq!(
            strings(&security["capabilities"]["drop"]),
            ["ALL"],
            "{what}/{name}"
        );
        assert!(security["capabilities"]["add"].is_null(), "{what}/{name}");
        assert_eq!(
            security["seccompProfile"]["type"], "RuntimeDefault",
            "{what}/{name}"
        );
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"][bound][resource].is_string(),
                    "{what}/{name}: resources.{bound}.{resource}"
                );
            }
        }
        assert!(container["livenessProbe"].is_object(), "{what}/{name}");
        assert!(container["readinessProbe"].is_object(), "{what}/{name}");
    }
}

#[test]
fn the_workloads_run_as_non_root_with_a_read_only_root_and_no_capabilities() {
    let docs = documents();
    let workloads: Vec<&Value> = docs
        .iter()
        .filter(|d| d["spec"]["template"]["spec"].is_object())
        .collect();
    assert_eq!(
        workloads.len(),
        2,
        "the Deployment and the Redis StatefulSet"
    );
    for workload in workloads {
        assert_locked_down(workload);
    }
    let namespace = find(&docs, "Namespace", "mcp-kernel");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn the_deployment_serves_http_with_auth_redis_probes_and_a_drain() {
    let docs = documents();
    let deployment = find(&docs, "Deployment", "mcp-kernel");
    assert!(number(&deployment["spec"]["replicas"], "replicas") >= 2);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], *labels);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    assert_eq!(args.first(), Some(&"serve"), "{args:?}");
    assert_eq!(flag(&args, "--http"), Some("0.0.0.0:8080"), "{args:?}");
    assert_eq!(
        flag(&args, "--auth-file"),
        Some("/etc/mcp-kernel/auth.json"),
        "{args:?}"
    );
    assert_eq!(
        flag(&args, "--config"),
        Some("/etc/mcp-kernel/servers.json"),
        "{args:?}"
    );
    assert!(!args.contains(&"--insecure-no-auth"), "{args:?}");
    assert!(
        args.iter().any(|a| a.ends_with(".svc.cluster.local")) && args.contains(&"--allowed-host"),
        "the Service's names are allowed hosts: {args:?}"
    );
    let env = container["env"].as_array().expect("env");
    let redis_url = env
        .iter()
        .find(|e| e["name"] == "REDIS_URL")
        .and_then(|e| e["value"].as_str())
        .expect("REDIS_URL");
    assert!(redis_url.starts_with("redis://"), "{redis_url}");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The pod outlives preStop plus the server's drain.
    let grace = flag(&args, "--shutdown-grace-secs").map_or(25, |g| g.parse().expect("grace"));
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap_or(0);
    let termination = number(&pod["terminationGracePeriodSeconds"], "termination grace");
    assert!(
        termination > pre_stop + grace,
        "terminationGracePeriodSeconds {termination} <= preStop {pre_stop} + drain {grace}"
    );
    // auth.json and servers.json come from the Secret and the ConfigMap, mounted read-only.
    let mount = container["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["mountPath"] == "/etc/mcp-kernel"))
        .expect("a mount at /etc/mcp-kernel");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
        .expect("the config volume");
    let sources = volume["projected"]["sources"].to_string();
    assert!(sources.contains("mcp-kernel-auth") && sources.contains("auth.json"));
    assert!(sources.contains("mcp-kernel-servers") && sources.contains("servers.json"));

    // The Service and the PDB select these pods.
    let service = find(&docs, "Service", "mcp-kernel");
    assert_eq!(service["spec"]["selector"], *labels);
    let pdb = find(&docs, "PodDisruptionBudget", "mcp-kernel");
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels);
}

#[test]
fn the_autoscaler_scales_on_cpu_and_the_queue_depth() {
    let docs = documents();
    let hpa = find(&docs, "HorizontalPodAutoscaler", "mcp-kernel");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "mcp-kernel");
    assert!(number(&hpa["spec"]["minReplicas"], "minReplicas") >= 2);
    let metrics = hpa["spec"]["metrics"].as_array().expect("metrics");
    assert!(
        metrics
            .iter()
            .any(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu")
    );
    assert!(
        metrics
            .iter()
            .any(|m| m["type"] == "Pods" && m["pods"]["metric"]["name"] == "mcpk_queue_depth")
    );
}

/// The TCP ports a policy's egress allows.
fn egress_ports(policy: &Value) -> Vec<i64> {
    policy["spec"]["egress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["ports"].as_array().into_iter().flatten())
        .map(|port| number(&port["port"], "port"))
        .collect()
}

#[test]
fn the_network_policies_deny_by_default_and_allow_only_clients_redis_dns_and_upstreams() {
    let docs = documents();
    let deny = find(&docs, "NetworkPolicy", "default-deny");
    assert_eq!(deny["spec"]["podSelector"], serde_json::json!({}));
    assert_eq!(strings(&deny["spec"]["policyTypes"]), ["Ingress", "Egress"]);

    let server = find(&docs, "NetworkPolicy", "mcp-kernel");
    let deployment = find(&docs, "Deployment", "mcp-kernel");
    assert_eq!(
        server["spec"]["podSelector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let ingress = server["spec"]["ingress"].as_array().expect("ingress rules");
    for rule in ingress {
        let from = rule["from"]
            .as_array()
            .expect("every ingress rule names its peers");
        assert!(!from.is_empty(), "{rule}");
        assert!(from.iter().all(|peer| peer["ipBlock"].is_null()), "{rule}");
    }
    assert!(
        ingress
            .iter()
            .any(|rule| rule.to_string().contains("mcp-kernel.io/client"))
    );
    let ports = egress_ports(server);
    assert!(ports.contains(&6379) && ports.contains(&53), "{ports:?}");
    for rule in server["spec"]["egress"].as_array().expect("egress rules") {
        assert!(
            rule["to"].is_array(),
            "an egress rule without `to` allows everywhere: {rule}"
        );
    }

    let redis = find(&docs, "NetworkPolicy", "redis");
    assert_eq!(egress_ports(redis), Vec::<i64>::new());
    assert_eq!(
        redis["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
}

#[test]
fn the_dockerfile_builds_the_binary_and_runs_it_unprivileged_under_tini() {
    let path = mcpk_tests::workspace_root().join("Dockerfile");
    let dockerfile = std::fs::read_to_string(&path).expect("the Dockerfile");
    // Instructions only (comments dropped), continuation lines joined.
    let text = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "a multi-stage build: {froms} FROM lines");
    assert!(text.contains("cargo build --release --locked --bin mcp-kernel"));
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER instruction");
    let uid = user["USER ".len()..].split(':').next().expect("a uid");
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid > 0),
        "a numeric non-root USER: {user}"
    );
    let healthcheck = text
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    assert!(healthcheck.contains("127.0.0.1/8080") && healthcheck.contains("/healthz"));
    let entrypoint = text
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    assert!(entrypoint.contains("tini"), "{entrypoint}");
    let ignore = std::fs::read_to_string(mcpk_tests::workspace_root().join(".dockerignore"))
        .expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "target/ stays out of the context"
    );
    assert!(
        mcpk_tests::workspace_root().join("Cargo.lock").is_file(),
        "--locked needs Cargo.lock"
    );
}
