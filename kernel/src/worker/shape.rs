//! Code shape: the agent's code is the body of an async function, and when its last top-level
//! statement is an expression statement, that expression is the result (as in a REPL).
//!
//! The rewrite is syntactic and exact: the code is parsed once as an async function body with
//! Boa's own parser, and the last statement's span is wrapped in `return (…);`. Anything the
//! parser rejects is left alone, so the engine reports the syntax error with its own message.

use std::ops::ControlFlow;

use boa_ast::visitor::{VisitWith, Visitor};
use boa_ast::{Expression, Position, Spanned, StatementListItem, statement::Statement};
use boa_interner::Interner;
use boa_parser::{Parser, Source};

/// Opening of the wrapper; kept on the first line so line numbers in stacks match the code.
pub(crate) const PREFIX: &str = "(async function(){";
/// Close of the wrapper: a newline first, so a trailing `// comment` cannot swallow it.
pub(crate) const SUFFIX: &str = "\n})()";

/// The full script text to evaluate for `code`: an immediately invoked async function whose
/// last expression statement, if any, is returned.
///
/// # Errors
/// The parser's message when `code` is not a valid async function body. It is checked on its
/// own, so positions refer to the user's code and never to the wrapper.
pub(crate) fn wrap(code: &str, interner: &mut Interner) -> Result<String, String> {
    let parsed = parse(code, interner).map_err(|e| match e.to_string() {
        // Boa's words for running out of input; name the likely causes instead.
        m if m.starts_with("abrupt end") => {
            "unexpected end of the code: an unclosed bracket, string, template or block".to_owned()
        }
        m => m,
    })?;
    let rewritten = last_expression_span(&parsed, code).map(|(start, end)| {
        let mut s = String::with_capacity(code.len() + 12);
        s.push_str(&code[..start]);
        s.push_str("return (");
        s.push_str(&code[start..end]);
        s.push_str(");");
        s.push_str(&code[end..]);
        s
    });
    // The rewrite must parse as well as the original did; if a span were ever off, running
    // the code unchanged (result `null`) beats reporting a syntax error the user did not write.
    let body = rewritten
        .filter(|body| parse(body, interner).is_ok())
        .unwrap_or_else(|| code.to_owned());
    Ok(format!("{PREFIX}{body}{SUFFIX}"))
}

fn parse(
    code: &str,
    interner: &mut Interner,
) -> Result<boa_ast::function::FunctionBody, boa_parser::Error> {
    Parser::new(Source::from_bytes(code)).parse_function_body(interner, false, true)
}

/// The smallest span covering every expression node under the visited one. Boa's spans of
/// some compound nodes (calls) start at their own punctuation rather than at their first
/// operand, but leaf spans are exact, so the union over all nodes is the statement's extent.
#[derive(Default)]
struct Extent {
    start: Option<Position>,
    end: Option<Position>,
}

impl<'ast> Visitor<'ast> for Extent {
    type BreakTy = ();

    fn visit_expression(&mut self, node: &'ast Expression) -> ControlFlow<()> {
        let span = node.span();
        let key = |p: Position| (p.line_number(), p.column_number());
        if self.start.is_none_or(|s| key(span.start()) < key(s)) {
            self.start = Some(span.start());
        }
        if self.end.is_none_or(|e| key(span.end()) > key(e)) {
            self.end = Some(span.end());
        }
        node.visit_with(self)
    }
}

/// Byte range of the last top-level statement when it is an expression statement.
fn last_expression_span(
    body: &boa_ast::function::FunctionBody,
    code: &str,
) -> Option<(usize, usize)> {
    let last = body.statements().last()?;
    let StatementListItem::Statement(stmt) = last else {
        return None;
    };
    let Statement::Expression(expr) = stmt.as_ref() else {
        return None;
    };
    let mut extent = Extent::default();
    let _ = extent.visit_expression(expr);
    let (start, end) = (extent.start?, extent.end?);
    let start = byte_offset(code, start.line_number(), start.column_number())?;
    let end = byte_offset(code, end.line_number(), end.column_number())?;
    (start < end).then_some((start, end))
}

/// Byte offset of a 1-based (line, column) position as Boa's lexer counts them: columns are
/// code points; `\r\n`, `\r`, `\n`, U+2028 and U+2029 each end a line.
fn byte_offset(code: &str, line: u32, column: u32) -> Option<usize> {
    let (mut cur_line, mut cur_col) = (1u32, 1u32);
    let mut chars = code.char_indices().peekable();
    loop {
        let peeked = chars.peek().copied();
        if cur_line == line && cur_col == column {
            return Some(peeked.map_or(code.len(), |(i, _)| i));
        }
        let (_, c) = chars.next()?;
        match c {
            '\r' => {
                if let Some((_, '\n')) = chars.peek() {
                    chars.next();
                }
                cur_line += 1;
                cur_col = 1;
            }
            '\n' | '\u{2028}' | '\u{2029}' => {
                cur_line += 1;
                cur_col = 1;
            }
            _ => cur_col += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> String {
        let w = wrap(code, &mut Interner::default()).unwrap();
        w[PREFIX.len()..w.len() - SUFFIX.len()].to_owned()
    }

    #[test]
    fn last_expression_becomes_the_return_value() {
        assert_eq!(body("1+1"), "return (1+1);");
        assert_eq!(body("let x = 3; x * 2;"), "let x = 3; return (x * 2);;");
        assert_eq!(body("mcp.state.n = 1"), "return (mcp.state.n = 1);");
    }

    #[test]
    fn multi_line_and_unicode_positions_are_exact() {
        assert_eq!(
            body("const s = '😀é';\r\nfoo(\n  s\n)\n// done"),
            "const s = '😀é';\r\nreturn (foo(\n  s\n));\n// done"
        );
    }

    #[test]
    fn statements_that_are_not_expressions_are_left_alone() {
        for code in [
            "let x = 1",
            "return 5",
            "if (a) { 1 }",
            "function f() {}",
            "",
        ] {
            assert_eq!(body(code), code);
        }
    }

    #[test]
    fn syntax_errors_name_positions_in_the_users_code() {
        let error = wrap("let x = 1;\nlet = = 2;", &mut Interner::default()).unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        let error = wrap("return ((", &mut Interner::default()).unwrap_err();
        assert!(error.contains("unexpected end of the code"), "{error}");
        assert!(!error.contains('}'), "{error}");
    }

    #[test]
    fn every_expression_form_is_wrapped_whole() {
        for expr in [
            "f()",
            "(a)",
            "(1, 2)",
            "a.b.c()",
            "`x${1}`",
            "new Foo()",
            "-x",
            "x++",
            "a ? b : c",
            "[1, 2]",
            "({a: 1})",
            "async () => 1",
            "typeof x",
            "await x",
            "x = await y",
            "'s'",
            "/re/.test(s)",
            "a?.b?.()",
            "f()()",
            "a[0](1)",
            "tag`t`",
            "(function(){}).call()",
            "x => x",
            "!x",
            "a, b",
        ] {
            assert_eq!(
                body(&format!("let q = 1;\n{expr}")),
                format!("let q = 1;\nreturn ({expr});"),
                "{expr}"
            );
        }
    }

    #[test]
    fn await_at_top_level_parses() {
        assert_eq!(body("await x; y"), "await x; return (y);");
    }
}
