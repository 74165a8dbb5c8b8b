//! TypeScript in, JavaScript out: type annotations are blanked out before Boa parses the code.
//!
//! The signatures agents read are TypeScript, so agents often write TypeScript. `swc`'s
//! strip-only mode (`swc_ts_fast_strip`, the type stripping Node's `--strip-types` uses)
//! replaces every annotation, interface, type alias, `as`/`satisfies` cast, generic argument,
//! `!` assertion and optional-parameter mark with whitespace, so every line and column of the
//! output is where the user wrote it: stack frames and syntax errors keep pointing at the
//! user's source without a source map.
//!
//! Plain JavaScript pays nothing: [`strip`] runs only after Boa's own parser rejected the code.
//! TypeScript that would need code generation (`enum`, `namespace`, parameter properties,
//! `<T>x` casts) is refused with a message that says what to write instead.
//!
//! `swc`'s parser recurses without a stack guard, so code nested deeper than
//! [`MAX_NESTING_LEVELS`] brackets is never handed to it (Boa's error is reported instead).

use std::sync::{Arc, Mutex, PoisonError};

use swc_common::errors::{DiagnosticBuilder, Emitter, Handler};
use swc_common::sync::Lrc;
use swc_common::{BytePos, GLOBALS, Globals, SourceMap};
use swc_ts_fast_strip::{ErrorCode, Mode, Options, operate};

/// Deepest nesting ([`nesting_levels`], counted without parsing) handed to the stripper. swc's recursive-descent parser used ~8–60 KB of stack per level in our probes and
/// has no guard; 1,000 levels stay far inside the worker's 8 MiB minimum stack.
pub(crate) const MAX_NESTING_LEVELS: usize = 1_000;

/// Opening of the function the code is parsed in: agent code is a function body (top-level
/// `return` and `await`), which a script is not. It ends with its own line, so the user's
/// lines are the output's lines shifted by one.
const BODY_PREFIX: &str = "async function __mcpk_body__() {\n";
const BODY_SUFFIX: &str = "\n}";

/// What [`strip`] made of code that Boa could not parse.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stripped {
    /// The code with its types blanked out: the same lines and columns, now JavaScript.
    JavaScript(String),
    /// TypeScript that stripping cannot turn into JavaScript; the message says what to write
    /// instead and where (`at line L, col C`, in the user's code).
    Unsupported(String),
    /// Not valid TypeScript either: swc's first error and where it is (1-based line and
    /// column in the user's code). When swc got further than Boa, this is the error to show.
    Invalid { message: String, at: (usize, usize) },
    /// Too deep to try, or swc gave no position: Boa's own error stands.
    NotTypeScript,
}

/// Blanks out the TypeScript types in `code`, an async function body.
pub(crate) fn strip(code: &str) -> Stripped {
    if nesting_levels(code) > MAX_NESTING_LEVELS {
        return Stripped::NotTypeScript;
    }
    let diagnostics = Diagnostics::default();
    let cm: Lrc<SourceMap> = Lrc::default();
    let handler = Handler::with_emitter(false, false, Box::new(diagnostics.clone()));
    let input = format!("{BODY_PREFIX}{code}{BODY_SUFFIX}");
    let options = Options {
        module: Some(false),
        mode: Mode::StripOnly,
        ..Options::default()
    };
    // A panic in swc (a bug on some input) must not take the worker down: the code then
    // counts as not TypeScript, and Boa's error stands.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        GLOBALS.set(&Globals::new(), || operate(&cm, &handler, input, options))
    }));
    let Ok(outcome) = outcome else {
        return Stripped::NotTypeScript;
    };
    match outcome {
        Ok(output) => output
            .code
            .strip_prefix(BODY_PREFIX)
            .and_then(|c| c.strip_suffix(BODY_SUFFIX))
            .map_or(Stripped::NotTypeScript, |js| {
                Stripped::JavaScript(js.to_owned())
            }),
        Err(e) => {
            let (message, at) = diagnostics.first().unwrap_or((e.message, None));
            // swc's positions count from 1 over the wrapped input.
            let at = at
                .and_then(|lo| lo.0.checked_sub(1 + BODY_PREFIX.len() as u32))
                .map(|offset| position_in(code, offset as usize));
            match (e.code, at) {
                (ErrorCode::UnsupportedSyntax, at) => {
                    let position = at
                        .map(|(line, col)| format!(" at line {line}, col {col}"))
                        .unwrap_or_default();
                    Stripped::Unsupported(format!("{}{position}", advice(&message)))
                }
                (_, Some(at)) => Stripped::Invalid { message, at },
                (_, None) => Stripped::NotTypeScript,
            }
        }
    }
}

/// swc's message for TypeScript it cannot strip, with what to write instead.
fn advice(message: &str) -> String {
    let what = message
        .strip_suffix(" in strip-only mode")
        .unwrap_or(message);
    let instead = if message.contains("enum") {
        "; types are stripped, not compiled: use a plain object instead, e.g. \
         `const Color = {Red: 'red', Green: 'green'}`"
    } else if message.contains("namespace") {
        "; types are stripped, not compiled: use a plain object or functions instead"
    } else if message.contains("parameter property") {
        "; types are stripped, not compiled: declare the field and assign it in the constructor"
    } else if message.contains("angle-bracket") {
        ": write `expr as T` instead"
    } else {
        ""
    };
    format!("{what}{instead}")
}

/// 1-based line and column (in characters, as Boa counts them) of byte `offset` in `code`.
fn position_in(code: &str, offset: usize) -> (usize, usize) {
    let before = code.get(..offset.min(code.len())).unwrap_or(code);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// An upper bound of the nesting swc's parser recurses through for `code`, found without
/// parsing: the deepest `(`/`[`/`{` nesting plus every `<` (a `<` may open a type argument
/// list, and `>` closes comparisons and arrows too, so `<` is never paired off). Strings and
/// comments are counted as code, which only raises the bound.
fn nesting_levels(code: &str) -> usize {
    let (mut depth, mut deepest, mut angles) = (0usize, 0usize, 0usize);
    for b in code.bytes() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'<' => angles += 1,
            _ => {}
        }
    }
    deepest + angles
}

/// One swc diagnostic: its message and primary position.
type Diagnostic = (String, Option<BytePos>);

/// Collects swc's diagnostics instead of printing them.
#[derive(Clone, Default)]
struct Diagnostics(Arc<Mutex<Vec<Diagnostic>>>);

impl Diagnostics {
    fn first(&self) -> Option<Diagnostic> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .cloned()
    }
}

impl Emitter for Diagnostics {
    fn emit(&mut self, db: &mut DiagnosticBuilder<'_>) {
        let at = db.span.primary_span().map(|s| s.lo);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((db.message(), at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(code: &str) -> String {
        match strip(code) {
            Stripped::JavaScript(js) => js,
            other => panic!("{code:?} did not strip: {other:?}"),
        }
    }

    #[test]
    fn types_become_whitespace_in_place() {
        let code = "interface Row { name: string; size?: number }\n\
                    const rows: Row[] = [{name: 'a'}] as Row[];\n\
                    function big<T extends Row>(r: T, min?: number): T[] { return [r] }\n\
                    const x = rows[0]! satisfies Row;\n\
                    return big<Row>(x, 1).length";
        let out = js(code);
        assert_eq!(out.lines().count(), code.lines().count());
        for (a, b) in out.lines().zip(code.lines()) {
            assert_eq!(a.len(), b.len(), "{a:?} / {b:?}");
        }
        assert!(
            !out.contains("interface") && !out.contains("satisfies"),
            "{out}"
        );
        assert!(out.contains("return big"), "{out}");
        assert!(!out.contains("Row") && !out.contains("number"), "{out}");
    }

    #[test]
    fn top_level_await_and_return_stay_valid() {
        let out = js("const r = await servers.fs.read({path: 'a'}) as string;\nreturn r");
        assert!(
            out.starts_with("const r = await servers.fs.read({path: 'a'})"),
            "{out}"
        );
        assert!(out.ends_with("\nreturn r"), "{out}");
    }

    #[test]
    fn what_stripping_cannot_do_is_refused_with_the_fix_and_the_position() {
        let Stripped::Unsupported(m) = strip("const a = 1;\nenum Color { Red, Green }\nreturn a")
        else {
            panic!("enum stripped");
        };
        assert!(m.starts_with("TypeScript enum is not supported"), "{m}");
        assert!(
            m.contains("plain object") && m.ends_with("at line 2, col 1"),
            "{m}"
        );
        let Stripped::Unsupported(m) = strip("class P { constructor(private x: number) {} }")
        else {
            panic!("parameter property stripped");
        };
        assert!(m.contains("assign it in the constructor"), "{m}");
    }

    #[test]
    fn invalid_code_gets_swcs_error_and_deep_nesting_is_left_to_boa() {
        let Stripped::Invalid { at, .. } = strip("const ok: string = 'a';\nconst x: number = ;")
        else {
            panic!("invalid TypeScript");
        };
        assert_eq!(at, (2, 19));
        let deep = format!(
            "{}1{}",
            "(".repeat(MAX_NESTING_LEVELS + 1),
            ")".repeat(MAX_NESTING_LEVELS + 1)
        );
        assert_eq!(strip(&format!("{deep}: number")), Stripped::NotTypeScript);
        // `>` never pairs off a `(`: arrows and comparisons cannot hide depth.
        let arrows = format!(
            "{}1{}",
            "(() => ".repeat(MAX_NESTING_LEVELS + 1),
            ")".repeat(MAX_NESTING_LEVELS + 1)
        );
        assert!(nesting_levels(&arrows) > MAX_NESTING_LEVELS);
        assert_eq!(nesting_levels("f<A<B>>(x)"), 3);
    }
}
