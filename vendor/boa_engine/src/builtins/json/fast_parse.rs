//! mcp-kernel patch: `JSON.parse` without a reviver, straight from the string's code units to
//! values.
//!
//! Boa 0.22 parsed the text twice (once with serde_json into a throw-away tree, to validate it,
//! then as the JavaScript source `(text);`), compiled it to bytecode and ran it: ~0.3 µs per
//! byte. This reads the JSON grammar (ECMA-404) once, with an explicit stack instead of native
//! recursion (so nesting depth is bounded by memory only, as in V8), and builds each value with
//! the same operations the spec's evaluation performs: `CreateDataProperty` on a fresh ordinary
//! object for each member in order (so a repeated key keeps its first position and last value,
//! and `__proto__` is a plain property), arrays from their elements, strings with every escape
//! (lone surrogates included), and numbers rounded correctly (Rust's `f64` parsing).

use crate::{
    Context, JsResult, JsString, JsValue,
    builtins::Array,
    error::JsNativeError,
    object::JsObject,
    property::PropertyKey,
    string::{JsStr, JsStrVariant},
};

/// Parses `text` as a JSON text into a value, or fails with a `SyntaxError` naming the position.
pub(super) fn parse(text: &JsString, context: &mut Context) -> JsResult<JsValue> {
    match text.as_str().variant() {
        JsStrVariant::Latin1(units) => Parser { s: units, i: 0, buf: Vec::new() }.parse(context),
        JsStrVariant::Utf16(units) => Parser { s: units, i: 0, buf: Vec::new() }.parse(context),
    }
}

/// A code unit of the text (Latin1 byte or UTF-16 unit).
trait Unit: Copy {
    fn get(self) -> u16;
    fn js_str(units: &[Self]) -> JsStr<'_>;
}
impl Unit for u8 {
    fn get(self) -> u16 {
        u16::from(self)
    }
    fn js_str(units: &[Self]) -> JsStr<'_> {
        JsStr::latin1(units)
    }
}
impl Unit for u16 {
    fn get(self) -> u16 {
        self
    }
    fn js_str(units: &[Self]) -> JsStr<'_> {
        JsStr::utf16(units)
    }
}

enum Frame {
    Array(Vec<JsValue>),
    Object(JsObject, PropertyKey),
}

struct Parser<'a, T> {
    s: &'a [T],
    i: usize,
    /// Scratch space for strings with escapes.
    buf: Vec<u16>,
}

impl<T: Unit> Parser<'_, T> {
    fn peek(&self) -> Option<u16> {
        self.s.get(self.i).map(|u| u.get())
    }

    fn skip_ws(&mut self) {
        while let Some(0x20 | 0x09 | 0x0A | 0x0D) = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, unit: u8) -> bool {
        if self.peek() == Some(u16::from(unit)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn error(&self) -> JsNativeError {
        match self.peek() {
            None => JsNativeError::syntax().with_message("JSON.parse: unexpected end of JSON input"),
            Some(u) => JsNativeError::syntax().with_message(format!(
                "JSON.parse: unexpected character {} at position {}",
                char::from_u32(u32::from(u)).map_or_else(|| format!("\\u{u:04x}"), |c| format!("{c:?}")),
                self.i
            )),
        }
    }

    fn expect(&mut self, unit: u8) -> JsResult<()> {
        self.skip_ws();
        if self.eat(unit) { Ok(()) } else { Err(self.error().into()) }
    }

    fn parse(mut self, context: &mut Context) -> JsResult<JsValue> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // A value starts here.
            self.skip_ws();
            let mut value = match self.peek() {
                Some(0x7B) => {
                    self.i += 1;
                    let object = JsObject::with_object_proto(context.intrinsics());
                    self.skip_ws();
                    if self.eat(b'}') {
                        object.into()
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Object(object, key));
                        continue;
                    }
                }
                Some(0x5B) => {
                    self.i += 1;
                    self.skip_ws();
                    if self.eat(b']') {
                        Array::create_array_from_list([], context).into()
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue;
                    }
                }
                Some(0x22) => self.string()?.into(),
                Some(0x74) => self.literal(b"true", JsValue::new(true))?,
                Some(0x66) => self.literal(b"false", JsValue::new(false))?,
                Some(0x6E) => self.literal(b"null", JsValue::null())?,
                Some(0x2D | 0x30..=0x39) => self.number()?,
                _ => return Err(self.error().into()),
            };
            // Hand the finished value to the containers it completes.
            loop {
                match stack.last_mut() {
                    None => {
                        self.skip_ws();
                        if self.i < self.s.len() {
                            return Err(self.error().into());
                        }
                        return Ok(value);
                    }
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        self.skip_ws();
                        if self.eat(b',') {
                            break;
                        }
                        if !self.eat(b']') {
                            return Err(self.error().into());
                        }
                        let Some(Frame::Array(items)) = stack.pop() else {
                            unreachable!("the top frame is an array")
                        };
                        value = Array::create_array_from_list(items, context).into();
                    }
                    Some(Frame::Object(object, key)) => {
                        object.create_data_property_or_throw(key.clone(), value, context)?;
                        self.skip_ws();
                        if self.eat(b',') {
                            self.skip_ws();
                            *key = self.key()?;
                            break;
                        }
                        if !self.eat(b'}') {
                            return Err(self.error().into());
                        }
                        let Some(Frame::Object(object, _)) = stack.pop() else {
                            unreachable!("the top frame is an object")
                        };
                        value = object.into();
                    }
                }
            }
        }
    }

    /// A member name and its colon.
    fn key(&mut self) -> JsResult<PropertyKey> {
        if self.peek() != Some(0x22) {
            return Err(self.error().into());
        }
        let key = PropertyKey::from(self.string()?);
        self.expect(b':')?;
        Ok(key)
    }

    fn literal(&mut self, word: &[u8], value: JsValue) -> JsResult<JsValue> {
        for &w in word {
            if !self.eat(w) {
                return Err(self.error().into());
            }
        }
        Ok(value)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(0x30..=0x39) = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> JsResult<JsValue> {
        let start = self.i;
        self.eat(b'-');
        if !self.eat(b'0') && self.digits() == 0 {
            return Err(self.error().into());
        }
        let mut integer = true;
        if self.eat(b'.') {
            integer = false;
            if self.digits() == 0 {
                return Err(self.error().into());
            }
        }
        if self.eat(b'e') || self.eat(b'E') {
            integer = false;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.error().into());
            }
        }
        // Every unit is ASCII here.
        let text: String = self.s[start..self.i]
            .iter()
            .map(|u| char::from(u.get() as u8))
            .collect();
        if integer && text.len() <= 10 {
            if let Ok(i) = text.parse::<i32>() {
                // "-0" is the float -0.
                if !(i == 0 && text.starts_with('-')) {
                    return Ok(JsValue::new(i));
                }
            }
        }
        let f: f64 = text.parse().map_err(|_| self.error())?;
        Ok(JsValue::new(f))
    }

    /// A string starting at its opening quote.
    fn string(&mut self) -> JsResult<JsString> {
        self.i += 1;
        let start = self.i;
        // Fast path: no escape before the closing quote, copy the slice as it is.
        loop {
            match self.peek() {
                None => return Err(self.error().into()),
                Some(0x22) => {
                    let string = JsString::from(T::js_str(&self.s[start..self.i]));
                    self.i += 1;
                    return Ok(string);
                }
                Some(0x5C) => break,
                Some(0x00..=0x1F) => return Err(self.error().into()),
                Some(_) => self.i += 1,
            }
        }
        self.buf.clear();
        self.buf.extend(self.s[start..self.i].iter().map(|u| u.get()));
        loop {
            match self.peek() {
                None | Some(0x00..=0x1F) => return Err(self.error().into()),
                Some(0x22) => {
                    self.i += 1;
                    break;
                }
                Some(0x5C) => {
                    self.i += 1;
                    let unit = match self.peek() {
                        Some(0x22) => 0x22,
                        Some(0x5C) => 0x5C,
                        Some(0x2F) => 0x2F,
                        Some(0x62) => 0x08,
                        Some(0x66) => 0x0C,
                        Some(0x6E) => 0x0A,
                        Some(0x72) => 0x0D,
                        Some(0x74) => 0x09,
                        Some(0x75) => {
                            let mut unit = 0u16;
                            for _ in 0..4 {
                                self.i += 1;
                                let digit = self
                                    .peek()
                                    .and_then(|u| char::from_u32(u32::from(u)))
                                    .and_then(|c| c.to_digit(16))
                                    .ok_or_else(|| self.error())?;
                                unit = unit * 16 + digit as u16;
                            }
                            unit
                        }
                        _ => return Err(self.error().into()),
                    };
                    self.i += 1;
                    self.buf.push(unit);
                }
                Some(u) => {
                    self.buf.push(u);
                    self.i += 1;
                }
            }
        }
        // Latin1 when every unit fits, as Boa's own literals are.
        if self.buf.iter().all(|&u| u <= 0xFF) {
            let bytes: Vec<u8> = self.buf.iter().map(|&u| u as u8).collect();
            Ok(JsString::from(JsStr::latin1(&bytes)))
        } else {
            Ok(JsString::from(JsStr::utf16(&self.buf)))
        }
    }
}
