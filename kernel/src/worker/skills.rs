//! Skills in the worker: the checks `mcp.skills.save` makes before anything leaves the worker,
//! and what it learns from the source's syntax tree.
//!
//! A skill's source must be ONE function expression (`function`, `async function`, an arrow or
//! an async arrow), at most [`MAX_SKILL_SOURCE_BYTES`] of UTF-8. It is parsed with Boa's own
//! parser as the script `(<source>\n)`: the parentheses make a function an expression, and the
//! newline keeps a trailing `// comment` from swallowing the `)`. Anything else that parses
//! (`1 + 2`, a class, a generator, `f, g`) is "not a function expression".
//!
//! From the tree the worker extracts, for the library's listing and for `search_tools`:
//! - `params`: the formal parameter names; `...name` for a rest parameter; `{…}` / `[…]` for a
//!   destructuring pattern (`...{…}` / `...[…]` when rest). Default values are not shown.
//! - `tools`: every upstream tool the source names LITERALLY, in first-occurrence order without
//!   repeats, wherever it occurs (nested functions and arrows included):
//!   `servers.A.B`, `servers['A']['B']` and the mixed forms, and
//!   `mcp.tools.call('A', 'B', …)` (also `mcp['tools']['call']`), with string-literal names.
//!
//!   Not detected: computed names that are not string literals (`servers[name].t`,
//!   `mcp.tools.call(server, 'x')`, template literals), aliases (`const gh = servers.github;
//!   gh.t()`), optional chains (`servers.A?.B`), and calls made through other skills (their
//!   own `tools` list them). Shadowing is ignored: a local named `servers` counts as the global.

use std::convert::Infallible;
use std::ops::ControlFlow;

use boa_ast::StatementListItem;
use boa_ast::declaration::Binding;
use boa_ast::expression::access::{PropertyAccess, PropertyAccessField, SimplePropertyAccess};
use boa_ast::expression::literal::LiteralKind;
use boa_ast::expression::{Call, Expression};
use boa_ast::function::{FormalParameter, FormalParameterList};
use boa_ast::pattern::Pattern;
use boa_ast::scope::Scope;
use boa_ast::statement::Statement;
use boa_ast::visitor::{VisitWith, Visitor};
use boa_interner::{Interner, Sym};
use boa_parser::{Parser, Source};

use crate::protocol::{MAX_SKILL_SOURCE_BYTES, ToolRef, is_skill_name};

/// Why a skill was refused; each maps to the JavaScript error class the agent sees
/// ([`SkillError::js_class`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SkillError {
    /// The name does not match the pattern (`TypeError`).
    Name(String),
    /// The source is over [`MAX_SKILL_SOURCE_BYTES`] (`RangeError`).
    TooLarge { source_bytes: usize },
    /// The source does not parse (`SyntaxError`, the parser's message).
    Syntax(String),
    /// The source is nested deeper than the parser's native stack bound (`RangeError`).
    TooDeep(String),
    /// The source parses but is not one function expression (`TypeError`).
    NotAFunction,
}

impl SkillError {
    /// The JavaScript error class to throw: `TypeError`, `RangeError` or `SyntaxError`.
    pub(crate) fn js_class(&self) -> &'static str {
        match self {
            Self::Name(_) | Self::NotAFunction => "TypeError",
            Self::TooLarge { .. } | Self::TooDeep(_) => "RangeError",
            Self::Syntax(_) => "SyntaxError",
        }
    }
}

impl std::fmt::Display for SkillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => {
                // At most 80 characters of the name.
                let shown: String = name.chars().take(80).collect();
                let more = if shown.len() < name.len() { "…" } else { "" };
                write!(
                    f,
                    "the skill name {shown:?}{more} is not valid: it must match ^[A-Za-z_$][A-Za-z0-9_$]{{0,63}}$"
                )
            }
            Self::TooLarge { source_bytes } => write!(
                f,
                "the skill's source is {source_bytes} bytes, over MAX_SKILL_SOURCE_BYTES={MAX_SKILL_SOURCE_BYTES}"
            ),
            Self::Syntax(message) => write!(f, "the skill's source does not parse: {message}"),
            Self::TooDeep(message) => write!(f, "the skill's source does not parse: {message}"),
            Self::NotAFunction => f.write_str(
                "the skill's source is not a function expression (expected one `function`, `async function`, arrow or async arrow function)",
            ),
        }
    }
}

/// What a valid skill's source declares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SkillInfo {
    /// Formal parameters, as described in the module docs.
    pub(crate) params: Vec<String>,
    /// Upstream tools named literally, first occurrence first, without repeats.
    pub(crate) tools: Vec<ToolRef>,
}

/// Checks a skill name.
pub(crate) fn check_name(name: &str) -> Result<(), SkillError> {
    if is_skill_name(name) {
        Ok(())
    } else {
        Err(SkillError::Name(name.to_owned()))
    }
}

/// Checks `name` and `source` as `mcp.skills.save` must (name, then size, then syntax) and
/// extracts the source's parameters and tools.
pub(crate) fn analyze(name: &str, source: &str) -> Result<SkillInfo, SkillError> {
    check_name(name)?;
    if source.len() > MAX_SKILL_SOURCE_BYTES {
        return Err(SkillError::TooLarge {
            source_bytes: source.len(),
        });
    }
    // A fresh interner: nothing of a refused or analysed source stays in the Context's.
    let mut interner = Interner::default();
    let wrapped = format!("({source}\n)");
    let script = match parse_script(&wrapped, &mut interner) {
        Ok(script) => script,
        // The wrapper's errors can point past the source (`line 2, col 1` for a missing `}`);
        // the source parsed alone names its own positions. If it does parse alone, it is
        // something other than one expression (`x => x; y`).
        Err(_) => {
            return Err(match parse_script(source, &mut Interner::default()) {
                Ok(_) => SkillError::NotAFunction,
                Err(message) if message == boa_parser::native_stack::MESSAGE => {
                    SkillError::TooDeep(message)
                }
                // Boa's words for running out of input; name the likely causes instead.
                Err(message) if message.starts_with("abrupt end") => SkillError::Syntax(
                    "unexpected end of the source: an unclosed bracket, string, template or block, or an operator with no operand".to_owned(),
                ),
                Err(message) => SkillError::Syntax(message),
            });
        }
    };
    let [StatementListItem::Statement(statement)] = script.statements().statements() else {
        return Err(SkillError::NotAFunction);
    };
    let Statement::Expression(expression) = statement.as_ref() else {
        return Err(SkillError::NotAFunction);
    };
    let parameters = match unparenthesized(expression) {
        Expression::FunctionExpression(f) => f.parameters(),
        Expression::AsyncFunctionExpression(f) => f.parameters(),
        Expression::ArrowFunction(f) => f.parameters(),
        Expression::AsyncArrowFunction(f) => f.parameters(),
        _ => return Err(SkillError::NotAFunction),
    };
    let params = param_names(parameters, &interner);
    let mut finder = ToolFinder {
        interner: &interner,
        tools: Vec::new(),
    };
    let _ = expression.visit_with(&mut finder);
    Ok(SkillInfo {
        params,
        tools: finder.tools,
    })
}

fn parse_script(text: &str, interner: &mut Interner) -> Result<boa_ast::Script, String> {
    let mut parser = Parser::new(Source::from_bytes(text));
    // Skills run in strict mode, as agent code does (see `compile_skill` in engine.rs).
    parser.set_strict();
    parser
        .parse_script(&Scope::new_global(), interner)
        .map_err(|e| e.to_string())
}

/// `expression` without any parentheses around it.
fn unparenthesized(mut expression: &Expression) -> &Expression {
    while let Expression::Parenthesized(inner) = expression {
        expression = inner.expression();
    }
    expression
}

fn param_names(parameters: &FormalParameterList, interner: &Interner) -> Vec<String> {
    parameters
        .as_ref()
        .iter()
        .map(|p: &FormalParameter| {
            let name = match p.variable().binding() {
                Binding::Identifier(id) => interner.resolve_expect(id.sym()).to_string(),
                Binding::Pattern(Pattern::Object(_)) => "{…}".to_owned(),
                Binding::Pattern(Pattern::Array(_)) => "[…]".to_owned(),
            };
            if p.is_rest_param() {
                format!("...{name}")
            } else {
                name
            }
        })
        .collect()
}

/// Collects the literal tool references of a syntax tree (see the module docs).
struct ToolFinder<'i> {
    interner: &'i Interner,
    tools: Vec<ToolRef>,
}

impl ToolFinder<'_> {
    fn text(&self, sym: Sym) -> String {
        self.interner.resolve_expect(sym).to_string()
    }

    /// The name `x` or `x['…']` accesses, when it is an identifier or a string literal.
    fn field(&self, field: &PropertyAccessField) -> Option<String> {
        match field {
            PropertyAccessField::Const(id) => Some(self.text(id.sym())),
            PropertyAccessField::Expr(expression) => self.string_literal(expression),
        }
    }

    fn string_literal(&self, expression: &Expression) -> Option<String> {
        match unparenthesized(expression) {
            Expression::Literal(literal) => match literal.kind() {
                LiteralKind::String(sym) => Some(self.text(*sym)),
                _ => None,
            },
            _ => None,
        }
    }

    fn is_global(&self, expression: &Expression, name: &str) -> bool {
        matches!(unparenthesized(expression), Expression::Identifier(id) if self.text(id.sym()) == name)
    }

    /// `(object, field)` of `object.field` / `object['field']` with a literal field.
    fn access<'e>(&self, expression: &'e Expression) -> Option<(&'e Expression, String)> {
        match unparenthesized(expression) {
            Expression::PropertyAccess(PropertyAccess::Simple(access)) => {
                Some((access.target(), self.field(access.field())?))
            }
            _ => None,
        }
    }

    fn push(&mut self, server: String, tool: String) {
        let tool = ToolRef { server, tool };
        if !self.tools.contains(&tool) {
            self.tools.push(tool);
        }
    }
}

impl<'ast> Visitor<'ast> for ToolFinder<'_> {
    type BreakTy = Infallible;

    fn visit_simple_property_access(
        &mut self,
        node: &'ast SimplePropertyAccess,
    ) -> ControlFlow<Infallible> {
        // `servers.A.B`: this node is `.B`, its target `servers.A`.
        if let Some(tool) = self.field(node.field())
            && let Some((servers, server)) = self.access(node.target())
            && self.is_global(servers, "servers")
        {
            self.push(server, tool);
        }
        node.visit_with(self)
    }

    fn visit_call(&mut self, node: &'ast Call) -> ControlFlow<Infallible> {
        // `mcp.tools.call('A', 'B', …)`.
        if let Some((tools, call)) = self.access(node.function())
            && call == "call"
            && let Some((mcp, field)) = self.access(tools)
            && field == "tools"
            && self.is_global(mcp, "mcp")
            && let [server, tool, ..] = node.args()
            && let (Some(server), Some(tool)) =
                (self.string_literal(server), self.string_literal(tool))
        {
            self.push(server, tool);
        }
        node.visit_with(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(server: &str, tool: &str) -> ToolRef {
        ToolRef {
            server: server.to_owned(),
            tool: tool.to_owned(),
        }
    }

    fn info(source: &str) -> SkillInfo {
        analyze("s", source).unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    #[test]
    fn params_of_every_function_form() {
        let cases = [
            ("function (a, b) { return a + b }", vec!["a", "b"]),
            ("function named(a) {}", vec!["a"]),
            ("async function (owner, repo) {}", vec!["owner", "repo"]),
            ("(x) => x", vec!["x"]),
            ("x => x", vec!["x"]),
            ("() => 1", vec![]),
            ("async x => x", vec!["x"]),
            ("async (a, ...rest) => rest", vec!["a", "...rest"]),
            ("({a, b}, [c, d], e = 1) => a", vec!["{…}", "[…]", "e"]),
            ("(...[a, b]) => a", vec!["...[…]"]),
            ("function (...{length}) {}", vec!["...{…}"]),
        ];
        for (source, params) in cases {
            assert_eq!(info(source).params, params, "{source}");
        }
    }

    #[test]
    fn tools_named_literally_are_found_in_order_without_repeats() {
        let source = r#"async (q) => {
            const a = await servers.github.search_issues({ q });
            const b = await servers['linear']['list-issues']({});
            const c = await servers.github["get_issue"]({});
            await mcp.tools.call('slack', 'post_message', { text: q });
            await mcp['tools']['call']("jira", "create", {});
            await servers.github.search_issues({ q: 2 });
            const nested = [1].map(async (x) => {
                const inner = () => servers.db.query({ x });
                return (function () { return servers.fs.read({}) })();
            });
            return [a, b, c, nested];
        }"#;
        assert_eq!(
            info(source).tools,
            [
                tool("github", "search_issues"),
                tool("linear", "list-issues"),
                tool("github", "get_issue"),
                tool("slack", "post_message"),
                tool("jira", "create"),
                tool("db", "query"),
                tool("fs", "read"),
            ]
        );
    }

    #[test]
    fn tools_in_default_values_count() {
        assert_eq!(
            info("async (r = servers.a.b({})) => r").tools,
            [tool("a", "b")]
        );
    }

    #[test]
    fn computed_aliased_and_optional_tool_names_are_not_detected() {
        let source = r"async (server, name) => {
            await servers[server].list({});
            await servers.github[name]({});
            await servers[`x`][`y`]({});
            await mcp.tools.call(server, 'x', {});
            await mcp.tools.call('x', name, {});
            const gh = servers.github; await gh.create({});
            await servers.a?.b({});
            await other.a.b({});
            await mcp.tools.list();
            return servers.github;
        }";
        assert_eq!(info(source).tools, []);
    }

    /// `mcp.skills.save(name, fn)` sends `Function.prototype.toString` of `fn`: Boa's must be
    /// the exact source text, for every function form (see the template patch in
    /// vendor/README.md).
    #[test]
    fn function_source_text_is_a_valid_skill() {
        let functions = [
            "function (a, b) { return a + b }",
            "function named(x, ...r) { return x }",
            "async function (q) { return await q }",
            "(x) => x + 1",
            "x => x",
            "async (a, b) => { return a }",
            "async x => x",
            "(x) => `v=${x}`",
            "(x) => `a${x}b${x}c`",
            "(x) => tag`v=${x}`",
            "async (x) => `${await x}`",
            "(x) => `plain`",
            "(x) => [`${x}`]",
            "(x) => (`${x}`)",
        ];
        let mut context = boa_engine::Context::default();
        for function in functions {
            let code = format!("String({function})");
            let text = context
                .eval(boa_engine::Source::from_bytes(&code))
                .map(|v| v.as_string().map(|s| s.to_std_string_lossy()))
                .unwrap_or_else(|e| panic!("{function}: {e}"));
            assert_eq!(text.as_deref(), Some(function));
            assert!(analyze("s", function).is_ok(), "{function}");
        }
    }

    #[test]
    fn names_follow_the_pattern() {
        for good in ["a", "_", "$", "fetchAll", "a1_$", &"x".repeat(64)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "1a", "a-b", "a b", "é", "a.b", &"x".repeat(65)] {
            assert_eq!(
                check_name(bad),
                Err(SkillError::Name(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            analyze("bad name", "() => 1"),
            Err(SkillError::Name("bad name".to_owned()))
        );
        let long = "x".repeat(10_000);
        assert_eq!(
            SkillError::Name(long).to_string(),
            format!(
                "the skill name \"{}\"… is not valid: it must match ^[A-Za-z_$][A-Za-z0-9_$]{{0,63}}$",
                "x".repeat(80)
            )
        );
    }

    #[test]
    fn sources_up_to_the_limit_are_accepted_and_bigger_ones_refused() {
        // `() => 1` padded with a comment to exactly the limit, then one byte more.
        let head = "() => 1 //";
        let at_limit = format!("{head}{}", "x".repeat(MAX_SKILL_SOURCE_BYTES - head.len()));
        assert_eq!(at_limit.len(), MAX_SKILL_SOURCE_BYTES);
        assert_eq!(analyze("s", &at_limit).map(|i| i.params), Ok(vec![]));
        let over = format!("{at_limit}x");
        assert_eq!(
            analyze("s", &over),
            Err(SkillError::TooLarge {
                source_bytes: MAX_SKILL_SOURCE_BYTES + 1
            })
        );
        assert_eq!(
            SkillError::TooLarge {
                source_bytes: 65_537
            }
            .to_string(),
            "the skill's source is 65537 bytes, over MAX_SKILL_SOURCE_BYTES=65536"
        );
    }

    #[test]
    fn sources_that_do_not_parse_are_syntax_errors() {
        for source in [
            "(x) => {",
            "function (a,) { return }}",
            "async x => await",
            "=>",
        ] {
            match analyze("s", source) {
                Err(e @ SkillError::Syntax(_)) => assert_eq!(e.js_class(), "SyntaxError"),
                other => panic!("{source:?}: {other:?}"),
            }
        }
        // A trailing line comment cannot swallow the closing parenthesis.
        assert_eq!(info("(a) => a // done").params, ["a"]);
        // Nor can a source close the parenthesis and go on.
        assert!(matches!(
            analyze("s", "() => 1), (globalThis.x = 1"),
            Err(SkillError::NotAFunction)
        ));
        // Positions are the source's own, not the wrapper's.
        assert_eq!(
            analyze("s", "(x) => {\n  return x +;\n}"),
            Err(SkillError::Syntax(
                "unexpected token ';', primary expression at line 2, col 13".to_owned()
            ))
        );
        assert_eq!(
            analyze("s", "(x) => { return"),
            Err(SkillError::Syntax(
                "unexpected end of the source: an unclosed bracket, string, template or block, or an operator with no operand".to_owned()
            ))
        );
    }

    #[test]
    fn sources_nested_past_the_parser_bound_are_range_errors() {
        // The bound is 4 MiB of native stack (the worker's main thread has 8 MiB); a test
        // thread has 2 MiB unless asked.
        let analyzed = std::thread::Builder::new()
            .stack_size(16 << 20)
            .spawn(|| {
                let depth = 30_000;
                let source = format!("() => {}1{}", "[".repeat(depth), "]".repeat(depth));
                analyze("s", &source)
            })
            .expect("a thread")
            .join()
            .expect("no panic");
        match analyzed {
            Err(e @ SkillError::TooDeep(_)) => assert_eq!(e.js_class(), "RangeError"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sources_that_are_not_one_function_expression_are_refused() {
        for source in [
            "1 + 2",
            "class {}",
            "function* () {}",
            "async function* () {}",
            "(() => 1, () => 2)",
            "f",
            "(() => 1)()",
            "'use strict'",
            "x => x; y",
            "1; () => 2",
            "",
            "// nothing",
        ] {
            assert_eq!(
                analyze("s", source),
                Err(SkillError::NotAFunction),
                "{source}"
            );
        }
        assert_eq!(SkillError::NotAFunction.js_class(), "TypeError");
        // Extra parentheses around a function are fine.
        assert_eq!(info("((a) => a)").params, ["a"]);
    }
}
