//! TypeScript-style signatures generated from an upstream tool's JSON Schemas.
//!
//! Two renderings of the same [`Tool`]:
//! - [`signature`]: one compact line an agent can call from, such as
//!   `servers.fs.read_file(args: {path: string; head?: number}): Promise<{content: string}>`.
//!   No descriptions, so a catalogue page of signatures stays small.
//! - [`declaration`]: the `.d.ts` text served as `tool://<server>/<tool>.d.ts`, with the tool's
//!   description, annotation hints, and an interface per schema whose properties carry their
//!   JSDoc (description, default, format, bounds).
//!
//! The text is for agents to read, not for `tsc`: `declare function servers.fs.read_file(..)`
//! is not valid TypeScript (a declared function cannot have a dotted name), but it shows the
//! exact expression to call.
//!
//! The JSON Schema → TypeScript mapping is best effort and never fails. Keywords that do not
//! change the shape of a value (`pattern`, `minimum`, ...) are dropped from types; keywords we
//! do not understand make the type wider (`unknown`), never narrower. `$ref` is followed only
//! inside the same document (`#/...`); a reference back into one that is being expanded is
//! written as the definition's name, and [`declaration`] adds a `type` alias for it.
//!
//! Properties come out required first, then optional, each group in the schema's map order
//! (alphabetical while serde_json is built without `preserve_order`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use rmcp::model::{JsonObject, Tool};
use serde_json::Value;

/// Object and array nesting, in levels, expanded before a type collapses to `object` or
/// `unknown`. Does not count `$ref`, `allOf`, `anyOf` or `oneOf`, which [`MAX_NODES`] bounds.
const MAX_DEPTH_LEVELS: usize = 6;

/// Schema nodes visited for one type before the rest renders as `unknown`. Bounds the text a
/// schema that references the same definition many times can expand into.
const MAX_NODES: usize = 1_000;

/// One compact TypeScript-style line for calling `tool` on `server`, e.g.
/// `servers.fs.read_file(args: {path: string; head?: number}): Promise<{content: string}>`.
///
/// The return type comes from `output_schema`, or is `unknown` without one.
pub(crate) fn signature(server: &str, tool: &Tool) -> String {
    let input = Value::Object(JsonObject::clone(&tool.input_schema));
    let args = Converter::new(&input).root_args();
    let output = match &tool.output_schema {
        Some(schema) => Converter::new(&Value::Object(JsonObject::clone(schema))).root(),
        None => Ty::unknown(),
    };
    format!(
        "{}(args: {}): Promise<{}>",
        accessor(server, &tool.name),
        args.text,
        output.text
    )
}

/// The full `.d.ts` text for `tool://<server>/<tool>.d.ts`: the tool's JSDoc and `declare
/// function` line, then an interface (or type alias) for its arguments and, when the tool
/// declares an output schema, for its result. Deterministic for a given tool.
pub(crate) fn declaration(server: &str, tool: &Tool) -> String {
    let base = pascal_case(&tool.name);
    let args_name = format!("{base}Args");
    let output_name = format!("{base}Output");

    let mut out = String::new();
    push_tool_doc(&mut out, tool);
    let returns = if tool.output_schema.is_some() {
        output_name.as_str()
    } else {
        "unknown"
    };
    let _ = writeln!(
        out,
        "declare function {}(args: {args_name}): Promise<{returns}>;",
        accessor(server, &tool.name)
    );

    out.push('\n');
    push_named_type(&mut out, &args_name, &tool.input_schema, true);
    if let Some(schema) = &tool.output_schema {
        out.push('\n');
        push_named_type(&mut out, &output_name, schema, false);
    }
    out
}

/// The JavaScript expression for a tool: dotted where both names are identifiers, bracketed
/// (with a JSON string) where not.
fn accessor(server: &str, tool: &str) -> String {
    let mut out = String::from("servers");
    for name in [server, tool] {
        if is_identifier(name) {
            out.push('.');
            out.push_str(name);
        } else {
            out.push('[');
            out.push_str(&json_string(name));
            out.push(']');
        }
    }
    out
}

/// An ASCII JavaScript identifier. Reserved words count: they are valid after a dot and as
/// property names, which are the only places we use this.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// A property key as written in a type literal: bare when an identifier, quoted otherwise.
fn property_key(name: &str) -> String {
    if is_identifier(name) {
        name.to_owned()
    } else {
        json_string(name)
    }
}

/// `read_file`, `get-item`, `listItems` → `ReadFile`, `GetItem`, `ListItems`; never starts with
/// a digit.
fn pascal_case(name: &str) -> String {
    let mut out = String::new();
    for word in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// How tightly a rendered type binds, to know when it needs parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Union,
    Intersection,
    Atom,
}

/// A rendered TypeScript type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ty {
    text: String,
    prec: Prec,
}

impl Ty {
    fn atom(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            prec: Prec::Atom,
        }
    }

    fn unknown() -> Self {
        Self::atom("unknown")
    }

    fn never() -> Self {
        Self::atom("never")
    }

    fn is(&self, text: &str) -> bool {
        self.text == text
    }

    /// The text, parenthesised when it binds more loosely than `context` needs.
    fn at_least(&self, context: Prec) -> String {
        if self.prec < context {
            format!("({})", self.text)
        } else {
            self.text.clone()
        }
    }

    /// `A | B`: duplicates dropped, `never` members dropped, and `unknown` if any member is.
    fn union(members: Vec<Ty>) -> Ty {
        let mut kept: Vec<Ty> = Vec::new();
        for member in members {
            if member.is("unknown") {
                return Ty::unknown();
            }
            if !member.is("never") && !kept.contains(&member) {
                kept.push(member);
            }
        }
        match kept.len() {
            0 => Ty::never(),
            1 => kept.remove(0),
            _ => Ty {
                text: kept
                    .iter()
                    .map(|m| m.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" | "),
                prec: Prec::Union,
            },
        }
    }

    /// `A & B`: duplicates and `unknown` parts dropped, `never` if any part is.
    fn intersection(parts: Vec<Ty>) -> Ty {
        let mut kept: Vec<Ty> = Vec::new();
        for part in parts {
            if part.is("never") {
                return Ty::never();
            }
            if !part.is("unknown") && !kept.contains(&part) {
                kept.push(part);
            }
        }
        match kept.len() {
            0 => Ty::unknown(),
            1 => kept.remove(0),
            _ => Ty {
                text: kept
                    .iter()
                    .map(|p| p.at_least(Prec::Intersection))
                    .collect::<Vec<_>>()
                    .join(" & "),
                prec: Prec::Intersection,
            },
        }
    }
}

/// Converts the schemas of one document, which `$ref`s resolve against.
struct Converter<'a> {
    root: &'a Value,
    /// References being expanded, innermost last: the recursion guard.
    expanding: Vec<String>,
    /// Recursive references met, by the name they were written as.
    recursive: BTreeMap<String, String>,
    nodes_left: usize,
}

impl<'a> Converter<'a> {
    fn new(root: &'a Value) -> Self {
        Self {
            root,
            expanding: Vec::new(),
            recursive: BTreeMap::new(),
            nodes_left: MAX_NODES,
        }
    }

    /// The type of the whole document.
    fn root(&mut self) -> Ty {
        self.ty(self.root, 0)
    }

    /// The type of the whole document as the `args` parameter: `{}` rather than `object` for a
    /// tool that takes no properties.
    fn root_args(&mut self) -> Ty {
        let ty = self.root();
        if ty.is("object") { Ty::atom("{}") } else { ty }
    }

    /// Follows `#...` JSON pointers within the document (`#` is the document itself).
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        self.root.pointer(reference.strip_prefix('#')?)
    }

    fn ty(&mut self, schema: &Value, depth: usize) -> Ty {
        let map = match schema {
            Value::Bool(true) => return Ty::unknown(),
            Value::Bool(false) => return Ty::never(),
            Value::Object(map) => map,
            _ => return Ty::unknown(),
        };
        if self.nodes_left == 0 {
            return Ty::unknown();
        }
        self.nodes_left -= 1;

        let mut parts = Vec::new();
        if let Some(Value::String(reference)) = map.get("$ref") {
            parts.push(self.reference(reference, depth));
        }
        if let Some(Value::Array(schemas)) = map.get("allOf") {
            for schema in schemas {
                parts.push(self.ty(schema, depth));
            }
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(schemas)) = map.get(keyword) {
                let members = schemas.iter().map(|s| self.ty(s, depth)).collect();
                parts.push(Ty::union(members));
            }
        }
        if let Some(own) = self.own_type(map, depth) {
            parts.push(own);
        }
        let ty = Ty::intersection(parts);
        if map.get("nullable") == Some(&Value::Bool(true)) {
            Ty::union(vec![ty, Ty::atom("null")])
        } else {
            ty
        }
    }

    fn reference(&mut self, reference: &str, depth: usize) -> Ty {
        if self.expanding.iter().any(|r| r == reference) {
            let name = reference_name(reference);
            self.recursive
                .entry(name.clone())
                .or_insert_with(|| reference.to_owned());
            return Ty::atom(name);
        }
        let Some(target) = self.resolve(reference) else {
            return Ty::unknown();
        };
        self.expanding.push(reference.to_owned());
        let ty = self.ty(target, depth);
        self.expanding.pop();
        ty
    }

    /// The type from `const`, `enum` or `type` (or, without `type`, the keywords that imply
    /// one); `None` when the schema says nothing of its own about the value.
    fn own_type(&mut self, map: &JsonObject, depth: usize) -> Option<Ty> {
        if let Some(value) = map.get("const") {
            return Some(literal(value));
        }
        if let Some(Value::Array(values)) = map.get("enum") {
            return Some(Ty::union(values.iter().map(literal).collect()));
        }
        let names: Vec<&str> = match map.get("type") {
            Some(Value::String(name)) => vec![name.as_str()],
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
            _ if ["properties", "additionalProperties", "patternProperties"]
                .iter()
                .any(|k| map.contains_key(*k)) =>
            {
                vec!["object"]
            }
            _ if ["items", "prefixItems"]
                .iter()
                .any(|k| map.contains_key(*k)) =>
            {
                vec!["array"]
            }
            _ => return None,
        };
        let members = names
            .into_iter()
            .map(|name| match name {
                "string" => Ty::atom("string"),
                "number" | "integer" => Ty::atom("number"),
                "boolean" => Ty::atom("boolean"),
                "null" => Ty::atom("null"),
                "object" => self.object(map, depth),
                "array" => self.array(map, depth),
                _ => Ty::unknown(),
            })
            .collect();
        Some(Ty::union(members))
    }

    fn object(&mut self, map: &JsonObject, depth: usize) -> Ty {
        if depth >= MAX_DEPTH_LEVELS {
            return Ty::atom("object");
        }
        let mut members = Vec::new();
        for (name, schema, required) in properties(map) {
            let ty = self.ty(schema, depth + 1);
            let optional = if required { "" } else { "?" };
            members.push(format!("{}{optional}: {}", property_key(name), ty.text));
        }
        if let Some(index) = self.index_signature(map, depth) {
            members.push(format!("[k: string]: {}", index.text));
        }
        if members.is_empty() {
            // No shape given: any object, unless extra properties are refused.
            return if map.get("additionalProperties") == Some(&Value::Bool(false)) {
                Ty::atom("{}")
            } else {
                Ty::atom("object")
            };
        }
        Ty::atom(format!("{{{}}}", members.join("; ")))
    }

    /// The value type of `additionalProperties` and `patternProperties` schemas, if any.
    fn index_signature(&mut self, map: &JsonObject, depth: usize) -> Option<Ty> {
        let mut values = Vec::new();
        if let Some(schema @ Value::Object(_)) = map.get("additionalProperties") {
            values.push(self.ty(schema, depth + 1));
        }
        if let Some(Value::Object(patterns)) = map.get("patternProperties") {
            for schema in patterns.values() {
                values.push(self.ty(schema, depth + 1));
            }
        }
        (!values.is_empty()).then(|| Ty::union(values))
    }

    fn array(&mut self, map: &JsonObject, depth: usize) -> Ty {
        if depth >= MAX_DEPTH_LEVELS {
            return Ty::atom("unknown[]");
        }
        // 2020-12 tuples are `prefixItems` + `items`; older drafts use an `items` array +
        // `additionalItems`.
        let (tuple, rest) = match (map.get("prefixItems"), map.get("items")) {
            (Some(Value::Array(prefix)), rest) => (Some(prefix), rest),
            (_, Some(Value::Array(prefix))) => (Some(prefix), map.get("additionalItems")),
            (_, items) => (None, items),
        };
        let Some(tuple) = tuple else {
            let element = match rest {
                Some(schema) => self.ty(schema, depth + 1),
                None => Ty::unknown(),
            };
            return Ty::atom(format!("{}[]", element.at_least(Prec::Atom)));
        };
        let mut elements: Vec<String> = tuple
            .iter()
            .map(|schema| self.ty(schema, depth + 1).text)
            .collect();
        // An absent or `true` rest stays unwritten: tuples are nearly always meant as exact.
        if let Some(schema @ Value::Object(_)) = rest {
            let element = self.ty(schema, depth + 1);
            elements.push(format!("...{}[]", element.at_least(Prec::Atom)));
        }
        Ty::atom(format!("[{}]", elements.join(", ")))
    }
}

/// `(name, schema, required)` for each of an object schema's `properties`, required first.
fn properties(map: &JsonObject) -> Vec<(&str, &Value, bool)> {
    let required: BTreeSet<&str> = match map.get("required") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    };
    let mut out: Vec<(&str, &Value, bool)> = match map.get("properties") {
        Some(Value::Object(properties)) => properties
            .iter()
            .map(|(name, schema)| (name.as_str(), schema, required.contains(name.as_str())))
            .collect(),
        _ => Vec::new(),
    };
    out.sort_by_key(|(_, _, required)| !required);
    out
}

/// A JSON value as a TypeScript literal type (JSON text is valid literal-type syntax).
fn literal(value: &Value) -> Ty {
    Ty::atom(value.to_string())
}

/// The name a recursive reference is written as: its last pointer segment, as an identifier
/// (`Root` for the document itself).
fn reference_name(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or_default();
    if last.is_empty() || last == "#" {
        return "Root".to_owned();
    }
    let mut name: String = last
        .replace("~1", "/")
        .replace("~0", "~")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The tool's JSDoc block: description, title and annotation hints.
fn push_tool_doc(out: &mut String, tool: &Tool) {
    let mut lines: Vec<String> = Vec::new();
    if let Some(description) = tool.description.as_deref().filter(|d| !d.trim().is_empty()) {
        lines.extend(description.trim().lines().map(str::to_owned));
    }
    let annotations = tool.annotations.as_ref();
    let title = tool
        .title
        .as_deref()
        .or_else(|| annotations.and_then(|a| a.title.as_deref()));
    let mut tags: Vec<String> = Vec::new();
    if let Some(title) = title {
        tags.push(format!("@title {title}"));
    }
    if let Some(a) = annotations {
        for (tag, hint) in [
            ("@readOnly", a.read_only_hint),
            ("@destructive", a.destructive_hint),
            ("@idempotent", a.idempotent_hint),
            ("@openWorld", a.open_world_hint),
        ] {
            match hint {
                Some(true) => tags.push(tag.to_owned()),
                Some(false) => tags.push(format!("{tag} false")),
                None => {}
            }
        }
    }
    if !lines.is_empty() && !tags.is_empty() {
        lines.push(String::new());
    }
    lines.extend(tags);
    push_doc(out, "", &lines);
}

/// A JSDoc block at `indent`: `/** one line */` or the multi-line form; nothing when empty.
fn push_doc(out: &mut String, indent: &str, lines: &[String]) {
    let lines: Vec<String> = lines
        .iter()
        .map(|line| line.trim_end().replace("*/", "*\\/"))
        .collect();
    match lines.as_slice() {
        [] => {}
        [line] => {
            let _ = writeln!(out, "{indent}/** {line} */");
        }
        _ => {
            let _ = writeln!(out, "{indent}/**");
            for line in &lines {
                if line.is_empty() {
                    let _ = writeln!(out, "{indent} *");
                } else {
                    let _ = writeln!(out, "{indent} * {line}");
                }
            }
            let _ = writeln!(out, "{indent} */");
        }
    }
}

/// `interface Name {..}` with a documented member per property when the schema is an object
/// with properties, else `type Name = ..;`. Then a `type` alias per recursive definition met.
fn push_named_type(out: &mut String, name: &str, schema: &JsonObject, is_args: bool) {
    let document = Value::Object(schema.clone());
    let mut converter = Converter::new(&document);
    // A document that is just a `$ref` (or whose object lives behind one) is documented from
    // the target.
    let (shape, shape_ref) = match schema.get("$ref") {
        Some(Value::String(reference)) if !schema.contains_key("properties") => {
            match converter.resolve(reference) {
                Some(Value::Object(target)) => (target, Some(reference.clone())),
                _ => (schema, None),
            }
        }
        _ => (schema, None),
    };
    let props = properties(shape);
    if props.is_empty() {
        let ty = if is_args {
            converter.root_args()
        } else {
            converter.root()
        };
        let _ = writeln!(out, "type {name} = {};", ty.text);
    } else {
        converter.expanding.extend(shape_ref);
        let _ = writeln!(out, "interface {name} {{");
        for (key, property, required) in props {
            push_doc(out, "  ", &property_doc(&converter, property));
            let ty = converter.ty(property, 1);
            let optional = if required { "" } else { "?" };
            let _ = writeln!(out, "  {}{optional}: {};", property_key(key), ty.text);
        }
        if let Some(index) = converter.index_signature(shape, 0) {
            let _ = writeln!(out, "  [k: string]: {};", index.text);
        }
        let _ = writeln!(out, "}}");
        converter.expanding.clear();
    }
    push_recursive_aliases(out, &mut converter);
}

/// `type Node = ..;` for each definition written by name because it refers back to itself;
/// expanding one may name more.
fn push_recursive_aliases(out: &mut String, converter: &mut Converter<'_>) {
    let mut written = BTreeSet::new();
    loop {
        let pending: Vec<(String, String)> = converter
            .recursive
            .iter()
            .filter(|(name, _)| !written.contains(*name))
            .map(|(name, reference)| (name.clone(), reference.clone()))
            .collect();
        if pending.is_empty() {
            return;
        }
        for (name, reference) in pending {
            let ty = match converter.resolve(&reference) {
                Some(target) => {
                    converter.expanding = vec![reference];
                    let ty = converter.ty(target, 0);
                    converter.expanding.clear();
                    ty
                }
                None => Ty::unknown(),
            };
            let _ = writeln!(out, "type {name} = {};", ty.text);
            written.insert(name);
        }
    }
}

/// A property's JSDoc lines: description, then `@default`, `@format`, bounds, `@pattern`,
/// `@deprecated`. A `$ref` property without a description of its own uses the target's.
fn property_doc(converter: &Converter<'_>, property: &Value) -> Vec<String> {
    let Value::Object(map) = property else {
        return Vec::new();
    };
    let target = match map.get("$ref") {
        Some(Value::String(reference)) => converter.resolve(reference).and_then(Value::as_object),
        _ => None,
    };
    let mut lines: Vec<String> = Vec::new();
    let description = map
        .get("description")
        .or_else(|| target.and_then(|t| t.get("description")))
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty());
    if let Some(description) = description {
        lines.extend(description.trim().lines().map(str::to_owned));
    }
    if let Some(default) = map.get("default") {
        lines.push(format!("@default {default}"));
    }
    if let Some(Value::String(format)) = map.get("format") {
        lines.push(format!("@format {format}"));
    }
    for keyword in [
        "minimum",
        "exclusiveMinimum",
        "maximum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
    ] {
        if let Some(bound @ Value::Number(_)) = map.get(keyword) {
            lines.push(format!("@{keyword} {bound}"));
        }
    }
    if let Some(Value::String(pattern)) = map.get("pattern") {
        lines.push(format!("@pattern {pattern}"));
    }
    if map.get("deprecated") == Some(&Value::Bool(true)) {
        lines.push("@deprecated".to_owned());
    }
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(value: Value) -> Tool {
        serde_json::from_value(value).expect("a valid tool")
    }

    /// The type of a standalone schema (any JSON value, including `true`/`false`).
    fn ts(value: Value) -> String {
        Converter::new(&value).root().text
    }

    #[test]
    fn schema_features_map_to_typescript() {
        let cases = [
            // No schema, anything, nothing.
            (json!({}), "unknown"),
            (json!(true), "unknown"),
            (json!(false), "never"),
            // Primitive types.
            (json!({"type": "string"}), "string"),
            (json!({"type": "number"}), "number"),
            (json!({"type": "integer"}), "number"),
            (json!({"type": "boolean"}), "boolean"),
            (json!({"type": "null"}), "null"),
            (json!({"type": "wat"}), "unknown"),
            (json!({"type": ["string", "null"]}), "string | null"),
            (json!({"type": ["integer", "number"]}), "number"),
            (json!({"type": "string", "nullable": true}), "string | null"),
            // Objects: required and optional properties, quoted keys, index signatures.
            (
                json!({"type": "object", "properties": {"b": {"type": "number"}, "a": {"type": "string"}}, "required": ["b"]}),
                "{b: number; a?: string}",
            ),
            (
                json!({"type": "object", "properties": {"content-type": {"type": "string"}, "2fa": {"type": "boolean"}, "$ok": {}}}),
                r#"{"content-type"?: string; "2fa"?: boolean; $ok?: unknown}"#,
            ),
            (json!({"type": "object"}), "object"),
            (
                json!({"type": "object", "additionalProperties": false}),
                "{}",
            ),
            (
                json!({"type": "object", "additionalProperties": {"type": "number"}}),
                "{[k: string]: number}",
            ),
            (
                json!({"properties": {"id": {"type": "string"}}, "required": ["id"], "additionalProperties": {"type": "string"}}),
                "{id: string; [k: string]: string}",
            ),
            (
                json!({"type": "object", "patternProperties": {"^x-": {"type": "string"}}}),
                "{[k: string]: string}",
            ),
            // Arrays and tuples.
            (
                json!({"type": "array", "items": {"type": "string"}}),
                "string[]",
            ),
            (json!({"type": "array"}), "unknown[]"),
            (
                json!({"type": "array", "items": {"type": ["string", "number"]}}),
                "(string | number)[]",
            ),
            (
                json!({"type": "array", "items": {"type": "array", "items": {"type": "boolean"}}}),
                "boolean[][]",
            ),
            (
                json!({"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "items": false}),
                "[number, number]",
            ),
            (
                json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "number"}}),
                "[string, ...number[]]",
            ),
            (
                json!({"type": "array", "items": [{"type": "string"}, {"type": "boolean"}]}),
                "[string, boolean]",
            ),
            // Literals.
            (
                json!({"type": "string", "enum": ["asc", "desc"]}),
                r#""asc" | "desc""#,
            ),
            (
                json!({"enum": [1, "one", null, true]}),
                r#"1 | "one" | null | true"#,
            ),
            (json!({"enum": []}), "never"),
            (json!({"const": "v1"}), r#""v1""#),
            (json!({"const": {"a": [1]}}), r#"{"a":[1]}"#),
            // Combinators.
            (
                json!({"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}),
                "string | null",
            ),
            (
                json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
                "string | string[]",
            ),
            (json!({"anyOf": [{"type": "string"}, {}]}), "unknown"),
            (
                json!({"allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"type": "object", "properties": {"b": {"type": "number"}}}
                ]}),
                "{a: string} & {b?: number}",
            ),
            (
                json!({"allOf": [{"anyOf": [{"type": "string"}, {"type": "number"}]}, {"type": "array"}]}),
                "(string | number) & unknown[]",
            ),
            (
                json!({"type": "array", "items": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object", "properties": {"b": {"type": "string"}}}]}}),
                "({a?: string} & {b?: string})[]",
            ),
            // A oneOf that only lists required sets adds nothing to the type.
            (
                json!({"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}, "oneOf": [{"required": ["id"]}, {"required": ["name"]}]}),
                "{id?: string; name?: string}",
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(ts(schema.clone()), expected, "schema: {schema}");
        }
    }

    #[test]
    fn refs_are_inlined_and_recursion_is_named() {
        let cases = [
            (
                json!({
                    "type": "object",
                    "properties": {"sort": {"$ref": "#/$defs/Order"}},
                    "$defs": {"Order": {"type": "string", "enum": ["asc", "desc"]}}
                }),
                r#"{sort?: "asc" | "desc"}"#,
            ),
            (
                json!({
                    "type": "object",
                    "properties": {"point": {"$ref": "#/definitions/Point"}},
                    "required": ["point"],
                    "definitions": {"Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}}
                }),
                "{point: {x: number; y: number}}",
            ),
            // Recursive: the inner self-reference is written as the definition's name.
            (
                json!({
                    "type": "object",
                    "properties": {"root": {"$ref": "#/$defs/Node"}},
                    "$defs": {"Node": {"type": "object", "properties": {
                        "name": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                    }, "required": ["name"]}}
                }),
                "{root?: {name: string; children?: Node[]}}",
            ),
            // A document that refers to itself.
            (
                json!({"type": "object", "properties": {"next": {"$ref": "#"}}}),
                "{next?: {next?: Root}}",
            ),
            (
                json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}, "y": {"$ref": "https://example.com/s.json"}}}),
                "{x?: unknown; y?: unknown}",
            ),
            (
                json!({"$ref": "#/$defs/A", "$defs": {"A": {"type": "string"}}, "nullable": true}),
                "string | null",
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(ts(schema.clone()), expected, "schema: {schema}");
        }
    }

    #[test]
    fn deep_nesting_collapses() {
        let mut schema = json!({"type": "string"});
        for _ in 0..10 {
            schema = json!({"type": "object", "properties": {"a": schema}, "required": ["a"]});
        }
        assert_eq!(
            ts(schema),
            "{a: {a: {a: {a: {a: {a: object}}}}}}",
            "six levels, then `object`"
        );
        let mut schema = json!({"type": "string"});
        for _ in 0..10 {
            schema = json!({"type": "array", "items": schema});
        }
        assert_eq!(ts(schema), "unknown[][][][][][][]");
    }

    #[test]
    fn repeated_references_are_bounded() {
        // Each definition refers to the next one twice: 2^30 expansions without a budget.
        let mut defs = serde_json::Map::new();
        for i in 0..30 {
            defs.insert(
                format!("D{i}"),
                json!({"anyOf": [{"$ref": format!("#/$defs/D{}", i + 1)}, {"allOf": [{"$ref": format!("#/$defs/D{}", i + 1)}, {"type": "object"}]}]}),
            );
        }
        defs.insert("D30".into(), json!({"type": "string"}));
        let text = ts(json!({"$ref": "#/$defs/D0", "$defs": defs}));
        assert!(text.len() < 100_000, "{} chars", text.len());
    }

    #[test]
    fn accessors_use_dots_for_identifiers_and_brackets_otherwise() {
        let cases = [
            ("fs", "read_file", "servers.fs.read_file"),
            ("$x", "_y2", "servers.$x._y2"),
            (
                "my-server",
                "get-item",
                r#"servers["my-server"]["get-item"]"#,
            ),
            ("github", "repos.list", r#"servers.github["repos.list"]"#),
            ("1password", "get", r#"servers["1password"].get"#),
            ("fs", "delete", "servers.fs.delete"),
            ("fs", "", r#"servers.fs[""]"#),
            ("fs", "naïve", r#"servers.fs["naïve"]"#),
        ];
        for (server, tool, expected) in cases {
            assert_eq!(accessor(server, tool), expected);
        }
    }

    #[test]
    fn signature_uses_output_schema_when_present() {
        let with_output = tool(json!({
            "name": "get-item",
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            "outputSchema": {"type": "object", "properties": {"item": {"type": "object", "additionalProperties": {"type": "string"}}}}
        }));
        assert_eq!(
            signature("my-server", &with_output),
            r#"servers["my-server"]["get-item"](args: {id: string}): Promise<{item?: {[k: string]: string}}>"#
        );
        let no_args =
            tool(json!({"name": "list_allowed_directories", "inputSchema": {"type": "object"}}));
        assert_eq!(
            signature("fs", &no_args),
            "servers.fs.list_allowed_directories(args: {}): Promise<unknown>"
        );
    }

    /// Five filesystem-server tools, schemas as the server publishes them.
    fn filesystem_tools() -> Vec<Tool> {
        let path = json!({"type": "string", "description": "Path of the file or directory"});
        vec![
            tool(json!({
                "name": "read_file",
                "description": "Read the complete contents of a file from the file system.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "path": path,
                        "tail": {"type": "number", "description": "If provided, returns only the last N lines of the file"},
                        "head": {"type": "number", "description": "If provided, returns only the first N lines of the file"}
                    },
                    "required": ["path"],
                    "additionalProperties": false,
                    "$schema": "http://json-schema.org/draft-07/schema#"
                },
                "outputSchema": {
                    "type": "object",
                    "properties": {"content": {"type": "string"}},
                    "required": ["content"]
                },
                "annotations": {"readOnlyHint": true}
            })),
            tool(json!({
                "name": "write_file",
                "description": "Create a new file or completely overwrite an existing file with new content.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"path": path, "content": {"type": "string"}},
                    "required": ["path", "content"],
                    "additionalProperties": false
                },
                "annotations": {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true}
            })),
            tool(json!({
                "name": "list_directory",
                "description": "Get a detailed listing of all files and directories in a specified path.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"path": path},
                    "required": ["path"],
                    "additionalProperties": false
                },
                "outputSchema": {
                    "type": "object",
                    "properties": {"entries": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "type": {"enum": ["file", "directory"]}},
                        "required": ["name", "type"]
                    }}},
                    "required": ["entries"]
                }
            })),
            tool(json!({
                "name": "search_files",
                "description": "Recursively search for files and directories matching a pattern.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "path": path,
                        "pattern": {"type": "string"},
                        "excludePatterns": {"type": "array", "items": {"type": "string"}, "default": []}
                    },
                    "required": ["path", "pattern"],
                    "additionalProperties": false
                }
            })),
            tool(json!({
                "name": "get_file_info",
                "description": "Retrieve detailed metadata about a file or directory.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"path": path},
                    "required": ["path"],
                    "additionalProperties": false
                },
                "outputSchema": {
                    "type": "object",
                    "properties": {
                        "size": {"type": "integer", "minimum": 0},
                        "created": {"type": "string", "format": "date-time"},
                        "modified": {"type": "string", "format": "date-time"},
                        "accessed": {"type": "string", "format": "date-time"},
                        "isDirectory": {"type": "boolean"},
                        "isFile": {"type": "boolean"},
                        "permissions": {"type": "string"}
                    },
                    "required": ["size", "created", "modified", "accessed", "isDirectory", "isFile", "permissions"]
                }
            })),
        ]
    }

    #[test]
    fn filesystem_signatures_are_compact() {
        let signatures: Vec<String> = filesystem_tools()
            .iter()
            .map(|t| signature("filesystem", t))
            .collect();
        let expected = [
            "servers.filesystem.read_file(args: {path: string; tail?: number; head?: number}): Promise<{content: string}>",
            "servers.filesystem.write_file(args: {path: string; content: string}): Promise<unknown>",
            r#"servers.filesystem.list_directory(args: {path: string}): Promise<{entries: {name: string; type: "file" | "directory"}[]}>"#,
            "servers.filesystem.search_files(args: {path: string; pattern: string; excludePatterns?: string[]}): Promise<unknown>",
            "servers.filesystem.get_file_info(args: {path: string}): Promise<{size: number; created: string; modified: string; accessed: string; isDirectory: boolean; isFile: boolean; permissions: string}>",
        ];
        assert_eq!(signatures, expected);
        let total: usize = signatures.iter().map(String::len).sum();
        assert!(total <= 1_300, "five signatures take {total} chars");
        // The issue's budget is "about 300 tokens" for five; counted with OpenAI's cl100k_base
        // encoding (tiktoken), a stand-in for the model's own tokenizer.
        let bpe = tiktoken_rs::cl100k_base().expect("the encoding ships with tiktoken-rs");
        let tokens = bpe.encode_ordinary(&signatures.join("\n")).len();
        assert!(tokens <= 300, "five signatures take {tokens} tokens");
    }

    #[test]
    fn declaration_documents_tool_and_properties() {
        let read_file = tool(json!({
            "name": "read_file",
            "title": "Read File",
            "description": "Read the complete contents of a file.\nOnly works within allowed directories.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Path of the file", "minLength": 1},
                    "head": {"type": "integer", "description": "Return only the first N lines", "minimum": 1, "maximum": 10000, "default": 10},
                    "encoding": {"type": "string", "enum": ["utf-8", "base64"], "default": "utf-8"},
                    "since": {"type": "string", "format": "date-time", "description": "Skip */ if older"}
                },
                "required": ["path"]
            },
            "outputSchema": {
                "type": "object",
                "properties": {"content": {"type": "string", "description": "The file's text"}},
                "required": ["content"]
            },
            "annotations": {"readOnlyHint": true, "destructiveHint": false, "openWorldHint": false}
        }));
        let expected = r#"/**
 * Read the complete contents of a file.
 * Only works within allowed directories.
 *
 * @title Read File
 * @readOnly
 * @destructive false
 * @openWorld false
 */
declare function servers.fs.read_file(args: ReadFileArgs): Promise<ReadFileOutput>;

interface ReadFileArgs {
  /**
   * Path of the file
   * @minLength 1
   */
  path: string;
  /**
   * Return only the first N lines
   * @default 10
   * @minimum 1
   * @maximum 10000
   */
  head?: number;
  /** @default "utf-8" */
  encoding?: "utf-8" | "base64";
  /**
   * Skip *\/ if older
   * @format date-time
   */
  since?: string;
}

interface ReadFileOutput {
  /** The file's text */
  content: string;
}
"#;
        let text = declaration("fs", &read_file);
        assert_eq!(text, expected);
        assert_eq!(declaration("fs", &read_file), text, "deterministic");
    }

    #[test]
    fn declaration_of_bare_tool_with_odd_names() {
        let bare = tool(json!({"name": "get-item", "inputSchema": {"type": "object"}}));
        assert_eq!(
            declaration("my-server", &bare),
            r#"declare function servers["my-server"]["get-item"](args: GetItemArgs): Promise<unknown>;

type GetItemArgs = {};
"#
        );
        let quoted = tool(json!({
            "name": "2fa",
            "description": "Check a code.",
            "inputSchema": {"type": "object", "properties": {"x-code": {"type": "string"}}, "additionalProperties": {"type": "string"}}
        }));
        assert_eq!(
            declaration("auth", &quoted),
            r#"/** Check a code. */
declare function servers.auth["2fa"](args: _2faArgs): Promise<unknown>;

interface _2faArgs {
  "x-code"?: string;
  [k: string]: string;
}
"#
        );
    }

    #[test]
    fn declaration_names_recursive_definitions() {
        let tree = tool(json!({
            "name": "create_tree",
            "inputSchema": {
                "$ref": "#/$defs/Args",
                "$defs": {
                    "Args": {"type": "object", "properties": {"root": {"$ref": "#/$defs/Node", "description": "Top node"}}, "required": ["root"]},
                    "Node": {
                        "type": "object",
                        "description": "A tree node",
                        "properties": {"label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                        "required": ["label"]
                    }
                }
            }
        }));
        assert_eq!(
            signature("t", &tree),
            "servers.t.create_tree(args: {root: {label: string; children?: Node[]}}): Promise<unknown>"
        );
        assert_eq!(
            declaration("t", &tree),
            r#"declare function servers.t.create_tree(args: CreateTreeArgs): Promise<unknown>;

interface CreateTreeArgs {
  /** Top node */
  root: {label: string; children?: Node[]};
}
type Node = {label: string; children?: Node[]};
"#
        );
    }
}
