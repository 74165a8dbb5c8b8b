//! Code shape: the agent's code is the body of a strict-mode async function, and when its last
//! top-level statement is an expression statement, that expression is the result (as in a
//! REPL).
//!
//! The rewrite is syntactic and exact: the code is parsed once as an async function body with
//! Boa's own parser, and `return ` is inserted where the last expression statement starts.
//! Only the start is needed: the expression statement runs to the end of the code (trailing
//! `;`, empty statements, comments and whitespace are all still valid after a `return`), so
//! nothing depends on where Boa's spans of compound nodes end (a computed member access such
//! as `rows[0]` ends before its `]`). Anything the parser rejects is left alone, so the engine
//! reports the syntax error with its own message.
//!
//! Code Boa rejects is tried as TypeScript (see [`super::typescript`]): with its types blanked
//! out in place, it is wrapped like JavaScript and keeps the user's lines and columns.
//!
//! The completion rule, checked against Node's REPL by the table in `shape_table.json`:
//! - the last statement, after skipping empty statements (`;`), is an expression statement:
//!   its value is the result, whatever the expression form (member access by index, optional
//!   chains, sequences, `await`, templates, `new`, arrows, classes, assignments, updates,
//!   unary operators, regex literals, parenthesised object literals), whatever comments or
//!   line breaks (ASI) come after it;
//! - any other last statement (a declaration, `if`, `for`, `while`, `try`, a block, `switch`)
//!   gives `undefined`, returned as `null`. Node's REPL differs there: it gives the completion
//!   value of the statement (`if (c) { 1 }` is `1`; `1; let x = 2` is `1`). We do not follow
//!   it, because a completion value there needs the engine's own completion tracking; the
//!   table records both answers for these cases, and the tool description tells agents to end
//!   with an expression or `return`.

use std::ops::ControlFlow;

use boa_ast::visitor::{VisitWith, Visitor};
use boa_ast::{Expression, Position, Spanned, StatementListItem, statement::Statement};
use boa_interner::Interner;
use boa_parser::{Parser, Source};

use super::typescript::{self, Stripped};

/// Opening of the wrapper; kept on the first line so line numbers in stacks match the code.
/// Its directive makes the code strict: an assignment to an undeclared name is a
/// `ReferenceError` instead of a new global (the global object is frozen anyway, see the
/// prelude's `lockdown`).
pub(crate) const PREFIX: &str = "(async function(){'use strict';";
/// Close of the wrapper: a newline first, so a trailing `// comment` cannot swallow it.
pub(crate) const SUFFIX: &str = "\n})()";
/// Close of the wrapper when the whole code is one function expression with no parameters
/// (`async () => { …; return r }`, the form Cloudflare Code Mode sends): the function the
/// code evaluates to is called, and its result is the call's result.
pub(crate) const CALL_SUFFIX: &str = "\n})().then(f => f())";

/// The full script text to evaluate for `code`: an immediately invoked async function whose
/// last expression statement, if any, is returned.
///
/// # Errors
/// The parser's message when `code` is not a valid async function body. It is checked on its
/// own, so positions refer to the user's code and never to the wrapper.
pub(crate) fn wrap(code: &str, interner: &mut Interner) -> Result<Wrapped, String> {
    let (stripped, parsed) = match parse(code, interner) {
        Ok(parsed) => (None, parsed),
        Err(e) => {
            let message = syntax_message(&e);
            // TypeScript? Its types blanked out, it parses as the same lines and columns.
            if message == boa_parser::native_stack::MESSAGE {
                return Err(message);
            }
            match typescript::strip(code) {
                Stripped::JavaScript(js) => match parse(&js, interner) {
                    Ok(parsed) => (Some(js), parsed),
                    Err(e) => return Err(syntax_message(&e)),
                },
                Stripped::Unsupported(m) => return Err(m),
                // Code that is TypeScript up to a later point than Boa could read: the real
                // mistake is where swc stopped (Boa stopped at the first type annotation).
                Stripped::Invalid { message: m, at }
                    if message_position(&message).is_some_and(|boa| at > boa) =>
                {
                    return Err(format!("{m} at line {}, col {}", at.0, at.1));
                }
                Stripped::Invalid { .. } | Stripped::NotTypeScript => return Err(message),
            }
        }
    };
    let code = stripped.as_deref().unwrap_or(code);
    let statements = parsed.statements().len();
    let rewritten = last_expression_start(&parsed, code).map(|start| {
        let mut s = String::with_capacity(code.len() + 8);
        s.push_str(&code[..start]);
        s.push_str(RETURN);
        s.push_str(&code[start..]);
        (s, start)
    });
    // The rewrite must parse to the same statements with a `return` in the expression's
    // place; if a span were ever off, running the code unchanged (result `null`) beats
    // reporting a syntax error the user did not write.
    let (body, return_at) =
        match rewritten.filter(|(body, _)| is_same_shape_with_return(body, statements, interner)) {
            Some((body, start)) => (body, Some(position_of(code, start))),
            None => (code.to_owned(), None),
        };
    let suffix = if is_whole_function(&parsed) && return_at.is_some() {
        CALL_SUFFIX
    } else {
        SUFFIX
    };
    Ok(Wrapped {
        source: format!("{PREFIX}{body}{suffix}"),
        positions: Positions {
            user_lines: code.split('\n').count(),
            return_at,
        },
    })
}

/// The script [`wrap`] made of the user's code, and how to map its positions back.
#[derive(Debug)]
pub(crate) struct Wrapped {
    /// The script text to evaluate.
    pub(crate) source: String,
    /// How positions in `source` relate to positions in the user's code.
    pub(crate) positions: Positions,
}

/// How positions in a wrapped script relate to the user's code: the wrapper's prefix shifts
/// line 1, an inserted `return ` shifts the rest of its line, and the wrapper's last line is
/// not the user's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Positions {
    /// Lines of the user's code; a frame below them is the wrapper's own call.
    user_lines: usize,
    /// The 1-based line and column (in characters) where `return ` was inserted.
    return_at: Option<(usize, usize)>,
}

/// The script path user code runs under, which stack frames show (`at f (code:2:5)`).
pub(crate) const CODE_PATH: &str = "code";
/// The script path of the worker's prelude; its frames are dropped from stacks (they are the
/// kernel's, not the user's).
pub(crate) const PRELUDE_PATH: &str = "prelude";

impl Positions {
    /// `stack` (Boa's `  at name (path:line:column)` lines) with frames in the user's code
    /// given the positions the user wrote, and the wrapper's and the prelude's own frames
    /// removed. Other lines (skills, `eval`, natives) are kept as they are.
    pub(crate) fn map_stack(&self, stack: &str) -> String {
        let prelude = format!("({PRELUDE_PATH}:");
        let mut out = Vec::new();
        // The prelude's frames and the nameless native frame that runs the wrapper are the
        // kernel's, not the user's.
        for line in stack
            .lines()
            .filter(|l| !l.contains(&prelude) && l.trim() != "at  (native)")
        {
            match self.map_frame(line) {
                Some(Some(mapped)) => out.push(mapped),
                Some(None) => {}
                None => out.push(line.to_owned()),
            }
        }
        out.join("\n")
    }

    /// `None` for a line that is not a frame in the user's code; `Some(None)` for the
    /// wrapper's frame, to drop; else the frame at the user's position.
    fn map_frame(&self, line: &str) -> Option<Option<String>> {
        let marker = format!("({CODE_PATH}:");
        let open = line.rfind(&marker)?;
        let rest = line[open + marker.len()..].strip_suffix(')')?;
        let (row, column) = rest.split_once(':')?;
        let (row, mut column): (usize, usize) = (row.parse().ok()?, column.parse().ok()?);
        if row > self.user_lines {
            return Some(None);
        }
        if row == 1 {
            column = column.saturating_sub(PREFIX.len()).max(1);
        }
        if let Some((at_row, at_column)) = self.return_at
            && row == at_row
            && column > at_column
        {
            column = column.saturating_sub(RETURN.len()).max(at_column);
        }
        Some(Some(format!("{}{marker}{row}:{column})", &line[..open])))
    }
}

/// Longest excerpt of a line shown under an error, in characters.
const MAX_EXCERPT_CHARS: usize = 100;

/// `stack` with the user's failing line first, a caret under the failing column: at the first
/// frame in the user's code (`(code:R:C)`, as [`Positions::map_stack`] leaves them), else at
/// a syntax error's `at line R, col C` in `message`. Unchanged when neither names a line of
/// `code`.
pub(crate) fn with_excerpt(code: &str, message: &str, stack: Option<String>) -> Option<String> {
    let marker = format!("({CODE_PATH}:");
    let from_stack = stack.as_deref().and_then(|stack| {
        stack.lines().find_map(|line| {
            let open = line.rfind(&marker)?;
            let (row, column) = line[open + marker.len()..]
                .strip_suffix(')')?
                .split_once(':')?;
            Some((row.parse().ok()?, column.parse().ok()?))
        })
    });
    let Some(excerpt) = from_stack
        .or_else(|| message_position(message))
        .and_then(|(row, column)| excerpt(code, row, column))
    else {
        return stack;
    };
    Some(match stack {
        Some(stack) if !stack.is_empty() => format!("{excerpt}\n{stack}"),
        _ => excerpt,
    })
}

/// Longest expression named in a message, in characters; a longer one is cut with `…`.
const MAX_NAMED_CHARS: usize = 60;

/// Boa 0.22's messages that do not say what failed, with the name read off the user's line
/// at the error's position, when the innermost frame is in the user's code:
/// - `not a callable function`, raised at the call's `(`: `r.split is not a function`;
/// - `cannot convert 'null' or 'undefined' to object`, raised at the property read:
///   `cannot read property 'x' of o.a: it is null or undefined`.
///
/// Any other message, or a position that does not look like that, is returned as it is.
pub(crate) fn with_names(code: &str, message: String, stack: Option<&str>) -> String {
    let marker = format!("({CODE_PATH}:");
    let Some((row, column)) = stack.and_then(|s| s.lines().next()).and_then(|first| {
        let open = first.rfind(&marker)?;
        let (row, column) = first[open + marker.len()..]
            .strip_suffix(')')?
            .split_once(':')?;
        Some((row.parse::<usize>().ok()?, column.parse::<usize>().ok()?))
    }) else {
        return message;
    };
    let Some(line) = nth_line(code, row) else {
        return message;
    };
    let chars: Vec<char> = line.trim_end_matches('\r').chars().collect();
    let Some(at) = column.checked_sub(1).filter(|&at| at < chars.len()) else {
        return message;
    };
    match message.as_str() {
        "not a callable function" if chars[at] == '(' => match expression_before(&chars, at) {
            Some(callee) => format!("{callee} is not a function"),
            None => message,
        },
        "cannot convert 'null' or 'undefined' to object" => {
            let name: String = chars[at..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '_' || **c == '$')
                .collect();
            let dot = at.checked_sub(1).filter(|&d| chars[d] == '.');
            match (name.is_empty(), dot) {
                (false, Some(dot)) => {
                    // `o?.x` reads `o` too: the object ends before the `?`.
                    let end = if dot > 0 && chars[dot - 1] == '?' {
                        dot - 1
                    } else {
                        dot
                    };
                    // Boa 0.22 places this error imprecisely in call chains
                    // (`t.split(…).length` with `t` undefined points at `.length`): only a
                    // plain member chain is named.
                    match expression_before(&chars, end).filter(|o| !o.contains('(')) {
                        Some(object) => format!(
                            "cannot read property '{name}' of {object}: it is null or undefined"
                        ),
                        None => message,
                    }
                }
                _ => message,
            }
        }
        _ => message,
    }
}

/// The member expression that ends just before `end` in `chars` (`a.b[0].c`, `(await x).y`,
/// `f(1).g`), or `None` when there is none; cut to [`MAX_NAMED_CHARS`].
fn expression_before(chars: &[char], end: usize) -> Option<String> {
    let mut start = end;
    while let Some(&c) = start.checked_sub(1).and_then(|i| chars.get(i)) {
        if c.is_alphanumeric() || c == '_' || c == '$' || c == '.' || c == '?' {
            start -= 1;
        } else if c == ')' || c == ']' {
            // Back over the balanced group.
            let (open, close) = if c == ')' { ('(', ')') } else { ('[', ']') };
            let mut depth = 0usize;
            let mut i = start;
            loop {
                i = i.checked_sub(1)?;
                if chars[i] == close {
                    depth += 1;
                } else if chars[i] == open {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
            start = i;
        } else {
            break;
        }
    }
    // A leading `?.` or `.` belongs to nothing; keywords such as `await` stay out (a space
    // stops the scan).
    while start < end && matches!(chars[start], '.' | '?') {
        start += 1;
    }
    if start == end {
        return None;
    }
    let text: String = chars[start..end].iter().collect();
    if text.chars().count() > MAX_NAMED_CHARS {
        let tail: String = chars[end - MAX_NAMED_CHARS..end].iter().collect();
        return Some(format!("…{tail}"));
    }
    Some(text)
}

/// The 1-based line and column of a parse error's `… at line L, col C`.
fn message_position(message: &str) -> Option<(usize, usize)> {
    let at = message.rfind(" at line ")?;
    let (row, rest) = message[at + " at line ".len()..].split_once(", col ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((row.parse().ok()?, rest[..digits].parse().ok()?))
}

/// Line `row` (1-based) of `code`, lines ending as the engine counts them: at `\r\n`, `\r`,
/// `\n`, U+2028 and U+2029.
fn nth_line(code: &str, row: usize) -> Option<&str> {
    let mut rest = code;
    for _ in 1..row {
        let end = rest.find(['\r', '\n', '\u{2028}', '\u{2029}'])?;
        let terminator = if rest[end..].starts_with("\r\n") {
            2
        } else {
            rest[end..].chars().next()?.len_utf8()
        };
        rest = &rest[end + terminator..];
    }
    (row >= 1).then_some(())?;
    let end = rest
        .find(['\r', '\n', '\u{2028}', '\u{2029}'])
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Line `row` of `code` (1-based) and a caret under `column` (1-based, in characters), as
/// `  3 | let x = f();` over `    |         ^`; a long line is cut to [`MAX_EXCERPT_CHARS`]
/// around the column.
fn excerpt(code: &str, row: usize, column: usize) -> Option<String> {
    let line = nth_line(code, row)?;
    let chars: Vec<char> = line.chars().collect();
    let column = column.max(1).min(chars.len() + 1);
    // Centred on the column, but never cut a line that fits.
    let start = (column - 1)
        .saturating_sub(MAX_EXCERPT_CHARS / 2)
        .min(chars.len().saturating_sub(MAX_EXCERPT_CHARS));
    let end = (start + MAX_EXCERPT_CHARS).min(chars.len());
    let mut shown: String = chars[start..end].iter().collect();
    let mut caret_at = column - 1 - start;
    if start > 0 {
        shown.insert(0, '…');
        caret_at += 1;
    }
    if end < chars.len() {
        shown.push('…');
    }
    let number = row.to_string();
    let gutter = " ".repeat(number.len());
    // Tabs keep their width in the caret line, so the caret stays under its character.
    let pad: String = shown
        .chars()
        .take(caret_at)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!("  {number} | {shown}\n  {gutter} | {pad}^"))
}

/// What [`wrap`] inserts before the last expression statement.
const RETURN: &str = "return ";

/// 1-based line and column, in characters, of byte offset `at` in `code`.
fn position_of(code: &str, at: usize) -> (usize, usize) {
    let before = &code[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Boa's message for a parse error, with its words for running out of input replaced by the
/// likely causes.
fn syntax_message(e: &boa_parser::Error) -> String {
    match e.to_string() {
        m if m.starts_with("abrupt end") => {
            "unexpected end of the code: an unclosed bracket, string, template or block".to_owned()
        }
        m => m,
    }
}

fn parse(
    code: &str,
    interner: &mut Interner,
) -> Result<boa_ast::function::FunctionBody, boa_parser::Error> {
    let mut parser = Parser::new(Source::from_bytes(code));
    // As the wrapper's directive will make it, so strict-only syntax errors (`with`, legacy
    // octal literals, `delete x`) name positions in the user's code too.
    parser.set_strict();
    parser.parse_function_body(interner, false, true)
}

/// Whether the code is one function expression (plain, async or arrow, possibly in
/// parentheses) with no parameters, and nothing else but empty statements.
fn is_whole_function(parsed: &boa_ast::function::FunctionBody) -> bool {
    let items = parsed.statements();
    let mut non_empty = items.iter().filter(|item| {
        !matches!(item, StatementListItem::Statement(s) if matches!(s.as_ref(), Statement::Empty))
    });
    let (Some(StatementListItem::Statement(only)), None) = (non_empty.next(), non_empty.next())
    else {
        return false;
    };
    let Statement::Expression(expression) = only.as_ref() else {
        return false;
    };
    let mut expression = expression;
    while let Expression::Parenthesized(inner) = expression {
        expression = inner.expression();
    }
    let parameters = match expression {
        Expression::ArrowFunction(f) => f.parameters(),
        Expression::AsyncArrowFunction(f) => f.parameters(),
        Expression::FunctionExpression(f) => f.parameters(),
        Expression::AsyncFunctionExpression(f) => f.parameters(),
        _ => return false,
    };
    parameters.as_ref().is_empty()
}

/// Whether `body` parses into `statements` top-level statements, the last one that is not
/// empty being a `return` with a value.
fn is_same_shape_with_return(body: &str, statements: usize, interner: &mut Interner) -> bool {
    let Ok(parsed) = parse(body, interner) else {
        return false;
    };
    let items = parsed.statements();
    items.len() == statements
        && matches!(
            last_non_empty(items),
            Some(StatementListItem::Statement(s))
                if matches!(s.as_ref(), Statement::Return(r) if r.target().is_some())
        )
}

/// The last item that is not an empty statement (`;`).
fn last_non_empty(items: &[StatementListItem]) -> Option<&StatementListItem> {
    items.iter().rev().find(|item| {
        !matches!(item, StatementListItem::Statement(s) if matches!(s.as_ref(), Statement::Empty))
    })
}

/// The earliest start of every expression node under the visited one. Boa's spans of some
/// compound nodes (calls) start at their own punctuation rather than at their first operand,
/// but leaf spans are exact, so the minimum over all nodes is where the statement starts.
#[derive(Default)]
struct Start(Option<Position>);

impl<'ast> Visitor<'ast> for Start {
    type BreakTy = ();

    fn visit_expression(&mut self, node: &'ast Expression) -> ControlFlow<()> {
        let start = node.span().start();
        let key = |p: Position| (p.line_number(), p.column_number());
        if self.0.is_none_or(|s| key(start) < key(s)) {
            self.0 = Some(start);
        }
        node.visit_with(self)
    }
}

/// Byte offset where the last top-level statement starts, when it is an expression statement
/// (empty statements after it are skipped).
fn last_expression_start(body: &boa_ast::function::FunctionBody, code: &str) -> Option<usize> {
    let StatementListItem::Statement(stmt) = last_non_empty(body.statements())? else {
        return None;
    };
    let Statement::Expression(expr) = stmt.as_ref() else {
        return None;
    };
    let mut start = Start::default();
    let _ = start.visit_expression(expr);
    let start = start.0?;
    byte_offset(code, start.line_number(), start.column_number())
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
        let w = wrap(code, &mut Interner::default()).unwrap().source;
        w[PREFIX.len()..w.len() - SUFFIX.len()].to_owned()
    }

    fn positions(code: &str) -> Positions {
        wrap(code, &mut Interner::default()).unwrap().positions
    }

    #[test]
    fn stack_frames_point_into_the_users_code_and_the_wrapper_frame_is_dropped() {
        // Frames as Boa writes them for the wrapped script of this code.
        let code = "function inner(x) {\n  return x.a.b;\n}\nconst f = () => inner({});\nf();";
        let stack = "    at inner (code:2:12)\n    at f (code:4:22)\n    at <main> (code:5:9)\n    \
                     at <main> (code:6:3)";
        assert_eq!(
            positions(code).map_stack(stack),
            "    at inner (code:2:12)\n    at f (code:4:22)\n    at <main> (code:5:2)"
        );
        // Line 1 carries the wrapper's prefix; `return ` was inserted at column 12 here.
        let code = "const x = f()";
        assert_eq!(body(code), "const x = f()", "a declaration gets no return");
        let code = "let y = 1; g(y)";
        let at = PREFIX.len() + 13 + RETURN.len();
        assert_eq!(
            positions(code).map_stack(&format!("    at <main> (code:1:{at})")),
            "    at <main> (code:1:13)"
        );
        // Columns before the insertion point only lose the prefix; other paths are kept.
        let before = PREFIX.len() + 5;
        assert_eq!(
            positions(code).map_stack(&format!(
                "    at <main> (code:1:{before})\n    at s (skills.s:1:40)\n    at <main> (eval at :1:2)"
            )),
            "    at <main> (code:1:5)\n    at s (skills.s:1:40)\n    at <main> (eval at :1:2)"
        );
    }

    #[test]
    fn last_expression_becomes_the_return_value() {
        assert_eq!(body("1+1"), "return 1+1");
        assert_eq!(body("let x = 3; x * 2;"), "let x = 3; return x * 2;");
        assert_eq!(body("mcp.state.n = 1"), "return mcp.state.n = 1");
    }

    #[test]
    fn index_access_and_trailing_punctuation_are_kept_whole() {
        assert_eq!(
            body("const rows = [5, 7];\nrows[0]"),
            "const rows = [5, 7];\nreturn rows[0]"
        );
        assert_eq!(body("a[b[c]]"), "return a[b[c]]");
        assert_eq!(body("o?.k?.[1]"), "return o?.k?.[1]");
        assert_eq!(body("(a)"), "return (a)");
        assert_eq!(body("({a: 1})"), "return ({a: 1})");
        assert_eq!(body("`a${b}//c`"), "return `a${b}//c`");
    }

    #[test]
    fn trailing_empty_statements_and_comments_stay_after_the_return() {
        assert_eq!(body("1;;"), "return 1;;");
        assert_eq!(body("v\n// done\n;\n"), "return v\n// done\n;\n");
        assert_eq!(body("v /* a */ // b"), "return v /* a */ // b");
    }

    #[test]
    fn asi_splits_are_respected() {
        // `i\n++\ni` is `i; ++i`: the last statement is `++i`.
        assert_eq!(body("let i = 0\ni\n++\ni"), "let i = 0\ni\nreturn ++\ni");
        assert_eq!(body("let a = 1\n;[a]"), "let a = 1\n;return [a]");
        // No ASI before `(`: `f\n()` is one call.
        assert_eq!(body("f\n()"), "return f\n()");
    }

    #[test]
    fn multi_line_and_unicode_positions_are_exact() {
        assert_eq!(
            body("const s = '😀é';\r\nfoo(\n  s\n)\n// done"),
            "const s = '😀é';\r\nreturn foo(\n  s\n)\n// done"
        );
        assert_eq!(body("'😀';\u{2028}[1][0]"), "'😀';\u{2028}return [1][0]");
    }

    #[test]
    fn statements_that_are_not_expressions_are_left_alone() {
        for code in [
            "let x = 1",
            "return 5",
            "if (a) { 1 }",
            "for (;;) { break }",
            "{ 1 }",
            "label: 1",
            "1; let z = 2",
            "function f() {}",
            "class C {}",
            "",
            ";",
        ] {
            assert_eq!(body(code), code);
        }
    }

    #[test]
    fn errors_show_the_failing_line_with_a_caret() {
        let code = "const a = 1;\nconst b = a.f();\nreturn b";
        let stack = Some("  at <main> (code:2:13)\n  at x (native)".to_owned());
        assert_eq!(
            with_excerpt(code, "not a callable function", stack).unwrap(),
            "  2 | const b = a.f();\n    |             ^\n  at <main> (code:2:13)\n  at x (native)"
        );
        assert_eq!(
            with_excerpt(code, "unexpected token at line 1, col 7", None).unwrap(),
            "  1 | const a = 1;\n    |       ^"
        );
        assert_eq!(with_excerpt(code, "no position", None), None);
        // Lines end where the engine ends them, U+2028 and `\r\n` included.
        assert_eq!(
            with_excerpt("a;\u{2028}b.c();\r\nd()", "x at line 2, col 4", None).unwrap(),
            "  2 | b.c();\n    |    ^"
        );
        // A line that fits is shown whole, wherever the column is.
        let fits = format!("{}x()", "a".repeat(MAX_EXCERPT_CHARS - 3));
        let shown = with_excerpt(&fits, "x at line 1, col 98", None).unwrap();
        assert!(shown.starts_with(&format!("  1 | {fits}\n")), "{shown}");
        assert_eq!(with_excerpt(code, "x at line 9, col 1", None), None);
        let long = format!("{}x()", "a".repeat(300));
        let shown = with_excerpt(&long, "x at line 1, col 301", None).unwrap();
        assert!(
            shown.starts_with("  1 | …") && shown.ends_with(&format!("{}^", " ".repeat(51))),
            "{shown}"
        );
    }

    #[test]
    fn boas_anonymous_errors_get_the_name_from_the_users_line() {
        let named = |code: &str, message: &str, frame: &str| {
            with_names(
                code,
                message.to_owned(),
                Some(&format!("  at <main> ({frame})")),
            )
        };
        let code =
            "const r = {};\nconst lines = r.split('\\n');\nreturn (await get()).items.map(f)";
        assert_eq!(
            named(code, "not a callable function", "code:2:22"),
            "r.split is not a function"
        );
        assert_eq!(
            named(code, "not a callable function", "code:3:31"),
            "(await get()).items.map is not a function"
        );
        assert_eq!(
            named(
                "return o.a.b",
                "cannot convert 'null' or 'undefined' to object",
                "code:1:12"
            ),
            "cannot read property 'b' of o.a: it is null or undefined"
        );
        assert_eq!(
            named(
                "return o?.a.b",
                "cannot convert 'null' or 'undefined' to object",
                "code:1:13"
            ),
            "cannot read property 'b' of o?.a: it is null or undefined"
        );
        // MAX_NAMED_CHARS: a 60-character callee is named whole, a longer one cut with `…`.
        let callee = |n: usize| format!("o{}", ".a".repeat((n - 1) / 2));
        let exact = callee(MAX_NAMED_CHARS - 1) + "x";
        assert_eq!(exact.chars().count(), MAX_NAMED_CHARS);
        let call = format!("{exact}()");
        let column = format!("code:1:{}", MAX_NAMED_CHARS + 1);
        assert_eq!(
            named(&call, "not a callable function", &column),
            format!("{exact} is not a function")
        );
        let longer = format!("p{exact}()");
        let column = format!("code:1:{}", MAX_NAMED_CHARS + 2);
        assert_eq!(
            named(&longer, "not a callable function", &column),
            format!("…{exact} is not a function")
        );
        // Not named in a call chain, where Boa's position is not the failing read.
        assert_eq!(
            named(
                "return t.split('\\n').length",
                "cannot convert 'null' or 'undefined' to object",
                "code:1:22"
            ),
            "cannot convert 'null' or 'undefined' to object"
        );
        // A position that is not at a call or a property, another message, or a native
        // innermost frame: unchanged.
        assert_eq!(
            named(code, "not a callable function", "code:2:7"),
            "not a callable function"
        );
        assert_eq!(
            named(code, "x is not defined", "code:2:22"),
            "x is not defined"
        );
        assert_eq!(
            with_names(
                code,
                "not a callable function".to_owned(),
                Some("  at map (native)\n  at <main> (code:2:22)")
            ),
            "not a callable function"
        );
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
            "new Foo",
            "-x",
            "x++",
            "++x",
            "a ? b : c",
            "[1, 2]",
            "({a: 1})",
            "async () => 1",
            "typeof x",
            "void 0",
            "delete o.k",
            "await x",
            "x = await y",
            "x += 1",
            "'s'",
            "/re/.test(s)",
            "/re/g",
            "a?.b?.()",
            "a?.[0]",
            "f()()",
            "a[0](1)",
            "a[0]",
            "a[i][j].k",
            "tag`t`",
            "a.b`t${1}`",
            "(function(){}).call()",
            "(class {})",
            "x => x",
            "!x",
            "a, b",
            "a[0], b[1]",
            "x ?? y",
            "2 ** 3",
            "'a' in o",
            "this",
        ] {
            assert_eq!(
                body(&format!("let q = 1;\n{expr}")),
                format!("let q = 1;\nreturn {expr}"),
                "{expr}"
            );
        }
    }

    /// Every case of the Node table whose last statement is an expression gets its `return`;
    /// the others are left alone (their values are checked through the binary in
    /// tests/tests/repl_rule.rs).
    #[test]
    fn every_table_case_parses_and_expression_cases_are_returned() {
        let table: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("shape_table.json")).unwrap();
        for row in table {
            let code = row["code"].as_str().unwrap();
            let wrapped = body(code);
            let deviates = row.get("kernel").is_some();
            let is_declaration = ["let ", "var ", "function ", "class ", "while "]
                .iter()
                .any(|p| code.starts_with(p) && !code.contains('\n'));
            if deviates || is_declaration {
                assert_eq!(wrapped, code, "{code:?}");
            } else {
                assert_ne!(wrapped, code, "{code:?} got no return");
                assert!(wrapped.contains("return "), "{code:?}");
            }
        }
    }

    #[test]
    fn await_at_top_level_parses() {
        assert_eq!(body("await x; y"), "await x; return y");
    }
}
