//! Return types learned from real results, for tools that declare no `outputSchema`.
//!
//! Every successful call of such a tool is a sample: the value agent code received (see
//! `upstream::result::value_of`) is walked and merged into a [`Shape`], which renders as a
//! TypeScript type. Shapes hold structure, never values:
//! - numbers, booleans and `null` leave only their kind;
//! - a string position keeps at most [`MAX_LITERALS`] candidate literals, each a short
//!   lowercase-first word (`"file"`, `"image"`), and drops them all (for good) at the first
//!   string that is not one, or when there are more. The type shows the literals only when
//!   there are at least [`MIN_LITERALS`] and each has been seen in [`MIN_LITERAL_SAMPLES`]
//!   different results: a value that comes back once, only inside one result (a user name
//!   repeated down a list), or always the same, stays `string`;
//! - object keys are kept as field names only while an object position has at most
//!   [`MAX_FIELDS`] of them and each is an identifier; otherwise the position becomes a
//!   `Record<string, T>` and its keys are forgotten (maps keyed by data: paths, dates, ids).
//!
//! Fields missing from some of the objects seen at a position are optional (`name?: T`).
//! Everything is bounded: [`MAX_SAMPLES`] results per tool, [`MAX_WALK_NODES`] values and
//! [`MAX_ELEMENTS`] array elements walked per result, [`MAX_DEPTH_LEVELS`] of nesting (deeper is
//! `unknown`), [`MAX_SHAPE_NODES`] nodes per shape, and [`MAX_TYPE_CHARS`] of rendered text
//! (deeper levels render as `{…}` until it fits).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// Results merged per tool and catalogue version; later results are not walked.
pub(crate) const MAX_SAMPLES: u32 = 32;
/// Values walked per result; the rest of a larger result is skipped.
const MAX_WALK_NODES: usize = 4_096;
/// Elements walked per array (the first ones).
const MAX_ELEMENTS: usize = 32;
/// Object and array nesting, in levels, below the result itself; deeper values are `unknown`.
const MAX_DEPTH_LEVELS: usize = 6;
/// Field names kept per object position before it becomes a `Record<string, T>`.
const MAX_FIELDS: usize = 24;
/// Longest field name kept, in bytes.
const MAX_KEY_BYTES: usize = 40;
/// Nodes (fields, array element shapes) per shape; new structure beyond it is `unknown`.
const MAX_SHAPE_NODES: usize = 512;
/// Candidate literals per string position.
const MAX_LITERALS: usize = 4;
/// Fewest distinct literals shown as a union: one value that never changes is as likely a
/// name (an account, a host) as an enum.
const MIN_LITERALS: usize = 2;
/// Longest candidate literal, in bytes.
const MAX_LITERAL_BYTES: usize = 16;
/// Distinct results a literal must have appeared in before the type shows it.
pub(crate) const MIN_LITERAL_SAMPLES: u32 = 3;
/// Longest rendered type, in characters.
const MAX_TYPE_CHARS: usize = 400;

/// What a tool's results looked like: the merged shape and how many results made it.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    samples: u32,
    nodes: usize,
    shape: Shape,
    rendered: Option<String>,
}

impl Observed {
    /// Merges one result, unless [`MAX_SAMPLES`] were merged already.
    pub(crate) fn add(&mut self, value: &Value) {
        if self.samples >= MAX_SAMPLES {
            return;
        }
        self.samples += 1;
        let mut walk = Walk {
            sample: self.samples,
            budget: MAX_WALK_NODES,
            nodes: &mut self.nodes,
        };
        self.shape.add(value, 0, &mut walk);
        self.rendered = None;
    }

    /// Results merged so far.
    pub(crate) fn samples(&self) -> u32 {
        self.samples
    }

    /// The TypeScript type of the results seen, at most [`MAX_TYPE_CHARS`] characters, or
    /// `None` before the first result.
    pub(crate) fn type_text(&mut self) -> Option<&str> {
        if self.samples == 0 {
            return None;
        }
        if self.rendered.is_none() {
            let mut text = String::new();
            for depth in (0..=MAX_DEPTH_LEVELS).rev() {
                text.clear();
                self.shape.render(0, depth, &mut text);
                if text.chars().count() <= MAX_TYPE_CHARS {
                    break;
                }
            }
            self.rendered = Some(text);
        }
        self.rendered.as_deref()
    }
}

/// Per-result walking state.
struct Walk<'a> {
    sample: u32,
    budget: usize,
    nodes: &'a mut usize,
}

impl Walk<'_> {
    /// Takes one node of the shape budget; `false` when the shape is full.
    fn grow(&mut self) -> bool {
        if *self.nodes >= MAX_SHAPE_NODES {
            return false;
        }
        *self.nodes += 1;
        true
    }
}

/// The kinds of value seen at one position (a union).
#[derive(Debug, Default)]
struct Shape {
    null: bool,
    boolean: bool,
    number: bool,
    string: Option<Strings>,
    /// The merged shape of the elements, once an array was seen here.
    array: Option<Box<Shape>>,
    object: Option<Object>,
    /// Something here was too deep or did not fit the shape budget.
    unknown: bool,
}

#[derive(Debug, Default)]
struct Strings {
    /// A string that could not be a literal was seen: render `string`, keep no candidates.
    open: bool,
    literals: Vec<Literal>,
}

#[derive(Debug)]
struct Literal {
    text: Box<str>,
    /// Distinct results it appeared in.
    samples: u32,
    last_sample: u32,
}

#[derive(Debug, Default)]
struct Object {
    /// Objects seen at this position.
    seen: u32,
    fields: BTreeMap<Box<str>, Field>,
    /// Set when the keys are data, not names: every value merged into one shape.
    record: Option<Box<Shape>>,
    /// A field was dropped for want of shape budget.
    truncated: bool,
}

#[derive(Debug, Default)]
struct Field {
    /// Objects at this position that had the field.
    seen: u32,
    shape: Shape,
}

fn is_field_name(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= MAX_KEY_BYTES
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn could_be_literal(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= MAX_LITERAL_BYTES
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Strings {
    fn add(&mut self, text: &str, sample: u32) {
        if self.open {
            return;
        }
        if let Some(literal) = self.literals.iter_mut().find(|l| &*l.text == text) {
            if literal.last_sample != sample {
                literal.last_sample = sample;
                literal.samples += 1;
            }
            return;
        }
        if !could_be_literal(text) || self.literals.len() >= MAX_LITERALS {
            self.open = true;
            self.literals = Vec::new();
            return;
        }
        self.literals.push(Literal {
            text: text.into(),
            samples: 1,
            last_sample: sample,
        });
    }

    fn render(&self, out: &mut String) {
        if self.open
            || self.literals.len() < MIN_LITERALS
            || self
                .literals
                .iter()
                .any(|l| l.samples < MIN_LITERAL_SAMPLES)
        {
            out.push_str("string");
            return;
        }
        let mut literals: Vec<&str> = self.literals.iter().map(|l| &*l.text).collect();
        literals.sort_unstable();
        for (i, literal) in literals.into_iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            // Literals are lowercase words: no escaping needed.
            let _ = write!(out, "\"{literal}\"");
        }
    }
}

impl Shape {
    fn add(&mut self, value: &Value, depth: usize, walk: &mut Walk<'_>) {
        if walk.budget == 0 {
            return;
        }
        walk.budget -= 1;
        match value {
            Value::Null => self.null = true,
            Value::Bool(_) => self.boolean = true,
            Value::Number(_) => self.number = true,
            Value::String(text) => self
                .string
                .get_or_insert_with(Strings::default)
                .add(text, walk.sample),
            Value::Array(items) => {
                if depth >= MAX_DEPTH_LEVELS {
                    self.unknown = true;
                    return;
                }
                if self.array.is_none() {
                    if !walk.grow() {
                        self.unknown = true;
                        return;
                    }
                    self.array = Some(Box::default());
                }
                let element = self.array.as_deref_mut().expect("set above");
                for item in items.iter().take(MAX_ELEMENTS) {
                    element.add(item, depth + 1, walk);
                }
            }
            Value::Object(map) => {
                if depth >= MAX_DEPTH_LEVELS {
                    self.unknown = true;
                    return;
                }
                let object = self.object.get_or_insert_with(Object::default);
                object.add(map, depth, walk);
            }
        }
    }

    /// Writes the type; object and array levels at `max_depth` and below render as `{…}` and
    /// `unknown[]`.
    fn render(&self, depth: usize, max_depth: usize, out: &mut String) {
        if self.unknown {
            out.push_str("unknown");
            return;
        }
        let start = out.len();
        let separate = |out: &mut String| {
            if out.len() > start {
                out.push_str(" | ");
            }
        };
        if let Some(object) = &self.object {
            separate(out);
            if depth >= max_depth {
                out.push_str("{…}");
            } else {
                object.render(depth, max_depth, out);
            }
        }
        if let Some(element) = &self.array {
            separate(out);
            if depth >= max_depth || element.is_empty() {
                out.push_str("unknown[]");
            } else if element.is_union() {
                out.push('(');
                element.render(depth + 1, max_depth, out);
                out.push_str(")[]");
            } else {
                element.render(depth + 1, max_depth, out);
                out.push_str("[]");
            }
        }
        if let Some(strings) = &self.string {
            separate(out);
            strings.render(out);
        }
        for (seen, name) in [
            (self.number, "number"),
            (self.boolean, "boolean"),
            (self.null, "null"),
        ] {
            if seen {
                separate(out);
                out.push_str(name);
            }
        }
        if out.len() == start {
            out.push_str("unknown");
        }
    }

    fn is_empty(&self) -> bool {
        !(self.null
            || self.boolean
            || self.number
            || self.unknown
            || self.string.is_some()
            || self.array.is_some()
            || self.object.is_some())
    }

    /// More than one kind, or a string position that renders as several literals.
    fn is_union(&self) -> bool {
        if self.unknown {
            return false;
        }
        let kinds = [
            self.null,
            self.boolean,
            self.number,
            self.string.is_some(),
            self.array.is_some(),
            self.object.is_some(),
        ]
        .into_iter()
        .filter(|&k| k)
        .count();
        kinds > 1 || {
            let mut text = String::new();
            if let Some(strings) = &self.string {
                strings.render(&mut text);
            }
            text.contains(" | ")
        }
    }

    /// Merges `other` into `self` (used when an object position turns into a record).
    fn absorb(&mut self, other: Shape) {
        self.null |= other.null;
        self.boolean |= other.boolean;
        self.number |= other.number;
        self.unknown |= other.unknown;
        if other.string.is_some() {
            // Literals of values that were under different names are not one enum: keep only
            // the kind.
            let mine = self.string.get_or_insert_with(Strings::default);
            mine.open = true;
            mine.literals = Vec::new();
        }
        match (&mut self.array, other.array) {
            (Some(mine), Some(theirs)) => mine.absorb(*theirs),
            (mine @ None, Some(theirs)) => *mine = Some(theirs),
            _ => {}
        }
        match (&mut self.object, other.object) {
            (Some(mine), Some(theirs)) => mine.absorb(theirs),
            (mine @ None, Some(theirs)) => *mine = Some(theirs),
            _ => {}
        }
    }
}

impl Object {
    fn add(&mut self, map: &serde_json::Map<String, Value>, depth: usize, walk: &mut Walk<'_>) {
        self.seen += 1;
        if self.record.is_none() {
            let new_keys = map
                .keys()
                .filter(|k| !self.fields.contains_key(k.as_str()))
                .count();
            if map.keys().any(|k| !is_field_name(k)) || self.fields.len() + new_keys > MAX_FIELDS {
                self.become_record();
            }
        }
        if let Some(record) = self.record.as_deref_mut() {
            for value in map.values().take(MAX_ELEMENTS) {
                record.add(value, depth + 1, walk);
            }
            return;
        }
        for (key, value) in map {
            let field = match self.fields.get_mut(key.as_str()) {
                Some(field) => field,
                None => {
                    if !walk.grow() {
                        self.truncated = true;
                        continue;
                    }
                    self.fields.entry(key.as_str().into()).or_default()
                }
            };
            field.seen += 1;
            field.shape.add(value, depth + 1, walk);
        }
    }

    /// Forgets the field names: every field's shape merges into one record value shape.
    fn become_record(&mut self) {
        let mut values = Shape::default();
        for (_, field) in std::mem::take(&mut self.fields) {
            values.absorb(field.shape);
        }
        self.record = Some(Box::new(values));
    }

    fn absorb(&mut self, other: Object) {
        self.seen += other.seen;
        self.truncated |= other.truncated;
        if let Some(theirs) = other.record {
            self.become_record();
            if let Some(mine) = self.record.as_deref_mut() {
                mine.absorb(*theirs);
            }
        }
        if let Some(mine) = self.record.as_deref_mut() {
            for (_, field) in other.fields {
                mine.absorb(field.shape);
            }
            return;
        }
        for (key, field) in other.fields {
            let mine = self.fields.entry(key).or_default();
            mine.seen += field.seen;
            mine.shape.absorb(field.shape);
        }
        if self.fields.len() > MAX_FIELDS {
            self.become_record();
        }
    }

    fn render(&self, depth: usize, max_depth: usize, out: &mut String) {
        if let Some(values) = &self.record {
            out.push_str("Record<string, ");
            if values.is_empty() {
                out.push_str("unknown");
            } else {
                values.render(depth + 1, max_depth, out);
            }
            out.push('>');
            return;
        }
        out.push('{');
        // Required fields first, then optional ones, each group in name order.
        let required = self.fields.iter().filter(|(_, f)| f.seen >= self.seen);
        let optional = self.fields.iter().filter(|(_, f)| f.seen < self.seen);
        for (i, (name, field)) in required.chain(optional).enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(name);
            if field.seen < self.seen {
                out.push('?');
            }
            out.push_str(": ");
            field.shape.render(depth + 1, max_depth, out);
        }
        if self.truncated {
            out.push_str(if self.fields.is_empty() {
                "…"
            } else {
                "; …"
            });
        }
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn learn(values: &[Value]) -> String {
        let mut observed = Observed::default();
        for v in values {
            observed.add(v);
        }
        observed.type_text().unwrap_or("<none>").to_owned()
    }

    #[test]
    fn scalars_and_unions() {
        assert_eq!(learn(&[]), "<none>");
        assert_eq!(learn(&[json!("Echo: hi")]), "string");
        assert_eq!(learn(&[json!(3)]), "number");
        assert_eq!(learn(&[json!(3), json!(null)]), "number | null");
        assert_eq!(
            learn(&[json!([1, "a", true])]),
            "(string | number | boolean)[]"
        );
        assert_eq!(learn(&[json!([])]), "unknown[]");
    }

    #[test]
    fn fields_missing_from_some_results_are_optional() {
        let t = learn(&[
            json!({"name": "a.txt", "size": 3}),
            json!({"name": "b", "size": 4, "children": [{"name": "c"}]}),
        ]);
        assert_eq!(
            t,
            "{name: string; size: number; children?: {name: string}[]}"
        );
        // Also across the elements of one array.
        assert_eq!(
            learn(&[json!([{"a": 1}, {"a": 2, "b": null}])]),
            "{a: number; b?: null}[]"
        );
    }

    #[test]
    fn no_string_from_the_data_shows_unless_it_is_a_small_enum_seen_in_many_results() {
        let entry = |kind: &str| json!({"type": kind, "owner": "alice"});
        // Once: no literal, however often it repeats inside the result.
        let one = learn(&[json!([entry("file"), entry("directory"), entry("file")])]);
        assert_eq!(one, "{owner: string; type: string}[]");
        assert!(!one.contains("alice") && !one.contains("file"));
        // In three results: a small enum of words shows; one value that never changes does not.
        let many: Vec<Value> = (0..3)
            .map(|_| json!([entry("file"), entry("directory")]))
            .collect();
        assert_eq!(
            learn(&many),
            "{owner: string; type: \"directory\" | \"file\"}[]"
        );
        // Anything that is not a short lowercase word forgets every candidate for good.
        let mut values = many.clone();
        values.push(json!([{"type": "File system entry", "owner": "alice"}]));
        values.extend(many);
        assert_eq!(learn(&values), "{owner: string; type: string}[]");
        // More than four distinct values: plain string.
        let tokens: Vec<Value> = (0..5).map(|i| json!(format!("v{i}"))).collect();
        assert_eq!(
            learn(&[json!(tokens.clone()), json!(tokens.clone()), json!(tokens)]),
            "string[]"
        );
        // Secret-looking strings never become literals, however often seen.
        let secret = json!({"token": "sk-live-8f3a9c2e77b1d4aa"});
        assert_eq!(
            learn(&[secret.clone(), secret.clone(), secret.clone(), secret]),
            "{token: string}"
        );
    }

    #[test]
    fn maps_keyed_by_data_become_records() {
        assert_eq!(
            learn(&[json!({"/tmp/a.txt": 3, "/tmp/b.txt": 4})]),
            "Record<string, number>"
        );
        let wide: serde_json::Map<String, Value> =
            (0..30).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(learn(&[Value::Object(wide)]), "Record<string, number>");
        // Fields seen before the switch merge into the record's values.
        assert_eq!(
            learn(&[json!({"a": "x"}), json!({"2024-01-01": 1})]),
            "Record<string, string | number>"
        );
    }

    #[test]
    fn each_limit_holds_at_its_value() {
        // MAX_KEY_BYTES: a 40-byte key is a field name, a 41-byte one makes a record.
        let key = |n: usize| "k".repeat(n);
        assert_eq!(
            learn(&[json!({ key(MAX_KEY_BYTES): 1 })]),
            format!("{{{}: number}}", key(MAX_KEY_BYTES))
        );
        assert_eq!(
            learn(&[json!({ key(MAX_KEY_BYTES + 1): 1 })]),
            "Record<string, number>"
        );
        // MAX_FIELDS: 24 fields stay an object, 25 make a record.
        let wide = |n: usize| -> Value {
            Value::Object((0..n).map(|i| (format!("f{i:02}"), json!(i))).collect())
        };
        assert!(learn(&[wide(MAX_FIELDS)]).starts_with("{f00: number"));
        assert_eq!(learn(&[wide(MAX_FIELDS + 1)]), "Record<string, number>");
        // MAX_LITERAL_BYTES: 16-byte words can be literals, a 17-byte one cannot.
        let words = |n: usize| -> Vec<Value> {
            (0..3)
                .map(|_| {
                    json!([
                        format!("a{}", "b".repeat(n - 1)),
                        format!("c{}", "d".repeat(n - 1))
                    ])
                })
                .collect()
        };
        assert!(learn(&words(MAX_LITERAL_BYTES)).contains(" | "));
        assert_eq!(learn(&words(MAX_LITERAL_BYTES + 1)), "string[]");
        // MAX_ELEMENTS: elements after the 32nd are not walked.
        let mut items: Vec<Value> = (0..MAX_ELEMENTS).map(|i| json!(i)).collect();
        items.push(json!("late"));
        assert_eq!(learn(&[Value::Array(items.clone())]), "number[]");
        items.insert(MAX_ELEMENTS - 1, json!("in"));
        assert_eq!(learn(&[Value::Array(items)]), "(string | number)[]");
        // MAX_WALK_NODES: a result is walked for 4,096 values; the rest is not seen. Four
        // keys of 32 arrays of 32 numbers are 4 × 1,057 values (+1): the last array of `d`
        // is past the budget, so its string is not seen, but the same string early in `d` is.
        let block = |string_at: Option<usize>| -> Value {
            Value::Array(
                (0..MAX_ELEMENTS)
                    .map(|i| {
                        let mut row: Vec<Value> = (0..MAX_ELEMENTS).map(|j| json!(j)).collect();
                        if string_at == Some(i) {
                            row[0] = json!("s");
                        }
                        Value::Array(row)
                    })
                    .collect(),
            )
        };
        let result =
            |d: Value| json!({"a": block(None), "b": block(None), "c": block(None), "d": d});
        assert_eq!(
            learn(&[result(block(Some(MAX_ELEMENTS - 1)))]),
            "{a: number[][]; b: number[][]; c: number[][]; d: number[][]}"
        );
        assert_eq!(
            learn(&[result(block(Some(0)))]),
            "{a: number[][]; b: number[][]; c: number[][]; d: (string | number)[][]}"
        );
    }

    #[test]
    fn depth_samples_and_size_are_bounded() {
        let mut deep = json!(1);
        for _ in 0..20 {
            deep = json!({"d": deep});
        }
        let t = learn(&[deep]);
        assert_eq!(t, "{d: {d: {d: {d: {d: {d: unknown}}}}}}");
        let mut observed = Observed::default();
        for i in 0..40 {
            observed.add(&json!({"i": i}));
        }
        assert_eq!(observed.samples(), MAX_SAMPLES);
        // Many distinct wide objects: the shape stops growing, the text stays bounded.
        let mut observed = Observed::default();
        for i in 0..32 {
            let fields: serde_json::Map<String, Value> = (0..20)
                .map(|j| (format!("f{i}_{j}"), json!({"x": {"y": [1]}})))
                .collect();
            observed.add(&json!({"items": [Value::Object(fields)]}));
        }
        assert!(observed.nodes <= MAX_SHAPE_NODES);
        let text = observed.type_text().unwrap_or_default().to_owned();
        assert!(text.chars().count() <= MAX_TYPE_CHARS, "{text}");
    }
}
