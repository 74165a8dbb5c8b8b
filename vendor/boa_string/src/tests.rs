#![allow(clippy::redundant_clone)]

use std::hash::{BuildHasher, BuildHasherDefault, Hash};

use crate::{
    CodePoint, CommonJsStringBuilder, JsStr, JsString, JsStringKind, Latin1JsStringBuilder,
    StaticJsStrings, StaticString, Utf16JsStringBuilder,
};

use rustc_hash::FxHasher;

fn hash_value<T: Hash>(value: &T) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one(value)
}

const fn ascii_to_utf16<const LEN: usize>(ascii: &[u8; LEN]) -> [u16; LEN] {
    let mut array = [0; LEN];
    let mut i = 0;
    while i < LEN {
        array[i] = ascii[i] as u16;
        i += 1;
    }
    array
}

#[test]
fn empty() {
    let s = StaticJsStrings::EMPTY_STRING;
    assert_eq!(&s, &[]);
}

#[test]
fn refcount() {
    let x = JsString::from("Hello world");
    assert_eq!(x.refcount(), Some(1));

    {
        let y = x.clone();
        assert_eq!(x.refcount(), Some(2));
        assert_eq!(y.refcount(), Some(2));

        {
            let z = y.clone();
            assert_eq!(x.refcount(), Some(3));
            assert_eq!(y.refcount(), Some(3));
            assert_eq!(z.refcount(), Some(3));
        }

        assert_eq!(x.refcount(), Some(2));
        assert_eq!(y.refcount(), Some(2));
    }

    assert_eq!(x.refcount(), Some(1));
}

#[test]
fn static_refcount() {
    let x = StaticJsStrings::EMPTY_STRING;
    assert_eq!(x.refcount(), None);

    {
        let y = x.clone();
        assert_eq!(x.refcount(), None);
        assert_eq!(y.refcount(), None);
    };

    assert_eq!(x.refcount(), None);
}

#[test]
fn ptr_eq() {
    let x = JsString::from("Hello");
    let y = x.clone();

    assert!(!x.is_static());

    assert_eq!(x.ptr.addr(), y.ptr.addr());

    let z = JsString::from("Hello");
    assert_ne!(x.ptr.addr(), z.ptr.addr());
    assert_ne!(y.ptr.addr(), z.ptr.addr());
}

#[test]
fn static_ptr_eq() {
    let x = StaticJsStrings::EMPTY_STRING;
    let y = x.clone();

    assert!(x.is_static());

    assert_eq!(x.ptr.addr(), y.ptr.addr());

    let z = StaticJsStrings::EMPTY_STRING;
    assert_eq!(x.ptr.addr(), z.ptr.addr());
    assert_eq!(y.ptr.addr(), z.ptr.addr());
}

#[test]
fn as_str() {
    const HELLO: &[u16] = &ascii_to_utf16(b"Hello");
    let x = JsString::from(HELLO);

    assert_eq!(&x, HELLO);
}

#[test]
fn hash() {
    const HELLOWORLD: JsStr<'_> = JsStr::latin1("Hello World!".as_bytes());
    let x = JsString::from(HELLOWORLD);

    assert_eq!(x.as_str(), HELLOWORLD);

    assert!(HELLOWORLD.is_latin1());
    assert!(x.as_str().is_latin1());

    let s_hash = hash_value(&HELLOWORLD);
    let x_hash = hash_value(&x);

    assert_eq!(s_hash, x_hash);
}

#[test]
fn concat() {
    const Y: &[u16] = &ascii_to_utf16(b", ");
    const W: &[u16] = &ascii_to_utf16(b"!");

    let x = JsString::from("hello");
    let z = JsString::from("world");

    let xy = JsString::concat(x.as_str(), JsString::from(Y).as_str());
    assert_eq!(&xy, &ascii_to_utf16(b"hello, "));
    assert_eq!(xy.refcount(), Some(1));

    let xyz = JsString::concat(xy.as_str(), z.as_str());
    assert_eq!(&xyz, &ascii_to_utf16(b"hello, world"));
    assert_eq!(xyz.refcount(), Some(1));

    let xyzw = JsString::concat(xyz.as_str(), JsString::from(W).as_str());
    assert_eq!(&xyzw, &ascii_to_utf16(b"hello, world!"));
    assert_eq!(xyzw.refcount(), Some(1));
}

#[test]
fn trim_start_non_ascii_to_ascii() {
    let s = "\u{2029}abc";
    let x = JsString::from(s);

    let y = x.trim_start();

    assert_eq!(&y, s.trim_start());
}

#[test]
fn conversion_to_known_static_js_string() {
    const JS_STR_U8: &JsStr<'_> = &JsStr::latin1("length".as_bytes());
    const JS_STR_U16: &JsStr<'_> = &JsStr::utf16(&ascii_to_utf16(b"length"));

    assert!(JS_STR_U8.is_latin1());
    assert!(!JS_STR_U16.is_latin1());

    assert_eq!(JS_STR_U8, JS_STR_U8);
    assert_eq!(JS_STR_U16, JS_STR_U16);

    assert_eq!(JS_STR_U8, JS_STR_U16);
    assert_eq!(JS_STR_U16, JS_STR_U8);

    assert_eq!(hash_value(JS_STR_U8), hash_value(JS_STR_U16));

    let string = StaticJsStrings::get_string(JS_STR_U8);

    assert!(string.is_some());
    assert!(string.unwrap().as_str().is_latin1());

    let string = StaticJsStrings::get_string(JS_STR_U16);

    assert!(string.is_some());
    assert!(string.unwrap().as_str().is_latin1());
}

#[test]
fn to_std_string_escaped() {
    assert_eq!(
        JsString::from("Hello, \u{1D49E} world!").to_std_string_escaped(),
        "Hello, \u{1D49E} world!"
    );

    assert_eq!(
        JsString::from("Hello, world!").to_std_string_escaped(),
        "Hello, world!"
    );

    // 15 should not be escaped.
    let unpaired_surrogates: [u16; 3] = [0xDC58, 0xD83C, 0x0015];
    assert_eq!(
        JsString::from(&unpaired_surrogates).to_std_string_escaped(),
        "\\uDC58\\uD83C\u{15}"
    );
}

#[test]
fn from_static_js_string() {
    static STATIC_HELLO_WORLD: StaticString =
        StaticString::new(JsStr::latin1("hello world".as_bytes()));
    static STATIC_EMOJIS: StaticString = StaticString::new(JsStr::utf16(&[
        0xD83C, 0xDFB9, 0xD83C, 0xDFB6, 0xD83C, 0xDFB5,
    ])); // 🎹🎶🎵

    let latin1 = JsString::from_static(&STATIC_HELLO_WORLD);
    let utf16 = JsString::from_static(&STATIC_EMOJIS);

    // content compare
    assert_eq!(latin1, "hello world");
    assert_eq!(utf16, "🎹🎶🎵");

    // refcount check
    let clone = latin1.clone();

    assert_eq!(clone, latin1);

    let clone = utf16.clone();

    assert_eq!(clone, utf16);

    assert!(latin1.refcount().is_none());
    assert!(utf16.refcount().is_none());

    // `is_latin1` check
    assert!(latin1.as_str().is_latin1());
    assert!(!utf16.as_str().is_latin1());
}

#[test]
fn compare_static_and_dynamic_js_string() {
    static STATIC_HELLO_WORLD: StaticString =
        StaticString::new(JsStr::latin1("hello world".as_bytes()));
    static STATIC_EMOJIS: StaticString = StaticString::new(JsStr::utf16(&[
        0xD83C, 0xDFB9, 0xD83C, 0xDFB6, 0xD83C, 0xDFB5,
    ])); // 🎹🎶🎵

    let static_latin1 = JsString::from_static(&STATIC_HELLO_WORLD);
    let static_utf16 = JsString::from_static(&STATIC_EMOJIS);

    let dynamic_latin1 = JsString::from(JsStr::latin1("hello world".as_bytes()));
    let dynamic_utf16 = JsString::from(&[0xD83C, 0xDFB9, 0xD83C, 0xDFB6, 0xD83C, 0xDFB5]);

    // content compare
    assert_eq!(static_latin1, dynamic_latin1);
    assert_eq!(static_utf16, dynamic_utf16);

    // length check
    assert_eq!(static_latin1.len(), dynamic_latin1.len());
    assert_eq!(static_utf16.len(), dynamic_utf16.len());

    // `is_static` check
    assert!(static_latin1.is_static());
    assert!(static_utf16.is_static());
    assert!(!dynamic_latin1.is_static());
    assert!(!dynamic_utf16.is_static());
}

#[test]
#[allow(clippy::cast_possible_truncation)]
#[allow(clippy::undocumented_unsafe_blocks)]
fn js_string_builder() {
    let s = "2024年5月21日";
    let utf16 = s.encode_utf16().collect::<Vec<_>>();
    let s_utf16 = utf16.as_slice();
    let ascii = "Lorem ipsum dolor sit amet";
    let s_ascii = ascii.as_bytes();
    let latin1_as_utf8_literal = "Déjà vu";
    let s_latin1_literal: &[u8] = &[
        b'D', 0xE9, /* é */
        b'j', 0xE0, /* à */
        b' ', b'v', b'u',
    ];

    // latin1 builder -- test

    // push ascii
    let mut builder = Latin1JsStringBuilder::new();
    for &code in s_ascii {
        builder.push(code);
    }
    let s_builder = builder.build().unwrap_or_default();
    assert_eq!(s_builder, ascii);

    // push latin1
    let mut builder = Latin1JsStringBuilder::new();
    for &code in s_latin1_literal {
        builder.push(code);
    }
    let s_builder = unsafe { builder.build_as_latin1() };
    assert_eq!(
        s_builder.to_std_string().unwrap_or_default(),
        latin1_as_utf8_literal
    );

    // from_iter ascii
    let s_builder = s_ascii
        .iter()
        .copied()
        .collect::<Latin1JsStringBuilder>()
        .build()
        .unwrap_or_default();
    assert_eq!(s_builder.to_std_string().unwrap_or_default(), ascii);

    // from_iter latin1
    let s_builder = unsafe {
        s_latin1_literal
            .iter()
            .copied()
            .collect::<Latin1JsStringBuilder>()
            .build_as_latin1()
    };
    assert_eq!(
        s_builder.to_std_string().unwrap_or_default(),
        latin1_as_utf8_literal
    );

    // extend_from_slice ascii
    let mut builder = Latin1JsStringBuilder::new();
    builder.extend_from_slice(s_ascii);
    let s_builder = builder.build().unwrap_or_default();
    assert_eq!(s_builder.to_std_string().unwrap_or_default(), ascii);

    // extend_from_slice latin1
    let mut builder = Latin1JsStringBuilder::new();
    builder.extend_from_slice(s_latin1_literal);
    let s_builder = unsafe { builder.build_as_latin1() };
    assert_eq!(
        s_builder.to_std_string().unwrap_or_default(),
        latin1_as_utf8_literal
    );

    // build from utf16 encoded string
    let s_builder = s
        .as_bytes()
        .iter()
        .copied()
        .collect::<Latin1JsStringBuilder>()
        .build();
    assert_eq!(None, s_builder);

    let s_builder = s_utf16
        .iter()
        .copied()
        .map(|v| v as u8)
        .collect::<Latin1JsStringBuilder>()
        .build();
    assert_eq!(None, s_builder);

    // utf16 builder -- test

    // push
    let mut builder = Utf16JsStringBuilder::new();
    for &code in s_utf16 {
        builder.push(code);
    }
    let s_builder = builder.build();
    assert_eq!(s_builder.to_std_string().unwrap_or_default(), s);

    // from_iter
    let s_builder = s_utf16
        .iter()
        .copied()
        .collect::<Utf16JsStringBuilder>()
        .build();
    assert_eq!(s_builder.to_std_string().unwrap_or_default(), s);

    // extend_from_slice
    let mut builder = Utf16JsStringBuilder::new();
    builder.extend_from_slice(s_utf16);
    let s_builder = builder.build();
    assert_eq!(s_builder.to_std_string().unwrap_or_default(), s);
}

#[test]
fn clone_builder() {
    // latin1 builder -- test
    let origin = Latin1JsStringBuilder::from(&b"0123456789"[..]);
    let empty_origin = Latin1JsStringBuilder::new();

    // clone == origin
    let cloned = origin.clone();
    assert_eq!(origin, cloned);

    // clone_from == origin
    let mut cloned_from = Latin1JsStringBuilder::new();
    cloned_from.clone_from(&origin);
    assert_eq!(origin, cloned_from);

    // clone == origin(empty)
    let cloned = empty_origin.clone();
    assert_eq!(empty_origin, cloned);

    // clone_from == origin(empty)

    cloned_from.clone_from(&empty_origin);
    assert!(cloned_from.capacity() > 0); // Should not be reallocated so the capacity is preserved.
    assert_eq!(empty_origin, cloned_from);

    // clone_from(empty) == origin(empty)
    let mut cloned_from = Latin1JsStringBuilder::new();
    cloned_from.clone_from(&empty_origin);
    assert_eq!(cloned_from.capacity(), 0);
    assert_eq!(empty_origin, cloned_from);

    // utf16 builder -- test
    let s = "2024年5月21日";

    let origin = Utf16JsStringBuilder::from(s.encode_utf16().collect::<Vec<_>>().as_slice());
    let empty_origin = Utf16JsStringBuilder::new();
    // clone == origin
    let cloned = origin.clone();
    assert_eq!(origin, cloned);

    // clone_from == origin(empty)
    let mut cloned_from = Utf16JsStringBuilder::new();
    cloned_from.clone_from(&origin);

    assert_eq!(origin, cloned_from);
    // clone == origin(empty)
    let cloned = empty_origin.clone();
    assert_eq!(empty_origin, cloned);

    // clone_from == origin(empty)

    cloned_from.clone_from(&empty_origin);
    assert!(cloned_from.capacity() > 0); // should not be reallocated so the capacity is preserved.
    assert_eq!(empty_origin, cloned_from);

    // clone_from(empty) == origin(empty)
    let mut cloned_from = Utf16JsStringBuilder::new();
    cloned_from.clone_from(&empty_origin);
    assert_eq!(cloned_from.capacity(), 0);
    assert_eq!(empty_origin, cloned_from);
}

#[test]
fn common_js_string_builder() {
    let utf16 = "2024年5月21日".encode_utf16().collect::<Vec<_>>();
    let s_utf16 = utf16.as_slice();
    let s = "Lorem ipsum dolor sit amet";
    let js_str_utf16 = JsStr::utf16(s_utf16);
    let js_str_ascii = JsStr::latin1(s.as_bytes());
    let latin1_bytes = [
        b'D', 0xE9, /* é */
        b'j', 0xE0, /* à */
        b' ', b'v', b'u',
    ];
    let ch = '🎹';
    let mut builder = CommonJsStringBuilder::with_capacity(10);
    builder += ch;
    builder += s;
    builder += js_str_utf16;
    builder += js_str_ascii;
    builder += ch;
    assert_eq!(builder.len(), 5);
    let js_string = builder.build_from_utf16();
    assert_eq!(
        js_string,
        "🎹Lorem ipsum dolor sit amet2024年5月21日Lorem ipsum dolor sit amet🎹"
    );
    let mut builder = CommonJsStringBuilder::new();
    for b in latin1_bytes {
        builder += b;
    }
    builder += s_utf16;
    builder += ch;
    let js_string = builder.build();
    assert_eq!(
        js_string.to_std_string().unwrap_or_default(),
        "Déjà vu2024年5月21日🎹"
    );
}

#[test]
fn code_points_optimization() {
    // Test Latin1 optimization with extended Latin1 characters
    let latin1_str = JsStr::latin1(b"Caf\xe9 na\xefve"); // "Café naïve" in Latin1 encoding
    let latin1_points: Vec<CodePoint> = latin1_str.code_points().collect();
    let expected_latin1: Vec<CodePoint> = "Café naïve".chars().map(CodePoint::Unicode).collect();
    assert_eq!(latin1_points, expected_latin1);

    // Test UTF-16 behavior unchanged (including non-ASCII)
    let utf16_str = JsStr::utf16(&[
        0x0043, 0x0061, 0x0066, 0x00E9, // "Café"
        0x0020, // space
        0x006E, 0x0061, 0x00EF, 0x0076, 0x0065, // "naïve"
    ]);
    let utf16_points: Vec<CodePoint> = utf16_str.code_points().collect();
    assert_eq!(latin1_points, utf16_points); // Same result for same content
}

#[test]
fn slice() {
    let sliced = {
        let base_str = JsString::from("Hello World");
        assert_eq!(base_str.kind(), JsStringKind::Latin1Sequence);

        base_str.slice(1, 5)
    };
    assert_eq!(sliced, JsString::from("ello"));
    assert_eq!(sliced.kind(), JsStringKind::Slice);

    let sliced2 = sliced.slice(1, 3);
    drop(sliced);
    assert_eq!(sliced2, JsString::from("ll"));
    assert_eq!(sliced2.kind(), JsStringKind::Slice);

    let sliced3 = sliced2.slice(0, 2);
    drop(sliced2);
    assert_eq!(sliced3, JsString::from("ll"));
    assert_eq!(sliced3.kind(), JsStringKind::Slice);

    let sliced4 = sliced3.slice(0, 2);
    drop(sliced3);
    assert_eq!(sliced4, JsString::from("ll"));
    assert_eq!(sliced4.kind(), JsStringKind::Slice);

    let sliced4 = sliced4.slice(0, 2);
    assert_eq!(sliced4, JsString::from("ll"));
    assert_eq!(sliced4.kind(), JsStringKind::Slice);

    let sliced5 = sliced4.slice(1, 1);
    assert_eq!(sliced5, JsString::from(""));
    assert_eq!(sliced5.kind(), JsStringKind::Static);

    assert_eq!(sliced5.slice(4, 4), StaticJsStrings::EMPTY_STRING);
}

#[test]
fn split() {
    let base_str = JsString::from("Hello World");
    assert_eq!(base_str.kind(), JsStringKind::Latin1Sequence);

    let str1 = base_str.slice(0, 5);
    let str2 = base_str.slice(6, base_str.len());

    assert_eq!(str1, JsString::from("Hello"));
    assert_eq!(str2, JsString::from("World"));

    let str3 = str1.clone();
    drop(str1);
    assert_eq!(str3, JsString::from("Hello"));
    drop(base_str);
    assert_eq!(str3, JsString::from("Hello"));
}

#[test]
fn trim() {
    // Very basic test for trimming. The extensive testing is done by `boa_engine`.
    let base_str = JsString::from(" \u{000B} Hello World \t ");
    assert_eq!(base_str.trim(), JsString::from("Hello World"));
}

#[test]
fn starts_with_and_ends_with_basic() {
    let basic = JsString::from("abcdef");
    let start_needle = JsStr::latin1("abc".as_bytes());
    assert!(basic.starts_with(start_needle));
    assert!(!basic.ends_with(start_needle));

    let end_needle = JsStr::latin1("def".as_bytes());
    assert!(!basic.starts_with(end_needle));
    assert!(basic.ends_with(end_needle));
}

// mcp-kernel patch: appendable strings (`vtable/append.rs`). Every result is compared with a
// plain `Vec<u16>` model.

fn units(s: &JsString) -> Vec<u16> {
    s.iter().collect()
}

#[test]
fn concat_onto_appends_in_place_at_the_tip() {
    let base = JsString::from("x".repeat(2000).as_str());
    let a = base.concat_onto(&[JsStr::latin1(b"abc")]);
    assert_eq!(
        a.kind(),
        JsStringKind::Append,
        "a result of 1024 units or more"
    );
    let b = a.concat_onto(&[JsStr::latin1(b"def")]);
    assert_eq!(b.kind(), JsStringKind::Append);
    // `a` was at the tip of an exact-size buffer: `b` has a doubled buffer of its own.
    let c = b.concat_onto(&[JsStr::latin1(b"ghi")]);
    // `b` had room: `c` shares its buffer and `b` is unchanged.
    assert_eq!(
        c.as_str().as_latin1().unwrap().as_ptr(),
        b.as_str().as_latin1().unwrap().as_ptr()
    );
    let mut model = "x".repeat(2000);
    model.push_str("abc");
    assert_eq!(a, JsString::from(model.as_str()));
    model.push_str("def");
    assert_eq!(b, JsString::from(model.as_str()));
    model.push_str("ghi");
    assert_eq!(c, JsString::from(model.as_str()));
    assert_eq!(b.len(), 2006);
}

#[test]
fn concat_onto_two_appends_to_the_same_prefix_are_both_right() {
    let s = JsString::from("p".repeat(1500).as_str());
    let s = s
        .concat_onto(&[JsStr::latin1(b"1")])
        .concat_onto(&[JsStr::latin1(b"2")]);
    let a = s.concat_onto(&[JsStr::latin1(b"x")]);
    let b = s.concat_onto(&[JsStr::latin1(b"y")]);
    let c = a.concat_onto(&[JsStr::latin1(b"z")]);
    let p = "p".repeat(1500);
    assert_eq!(s, JsString::from(format!("{p}12").as_str()));
    assert_eq!(a, JsString::from(format!("{p}12x").as_str()));
    assert_eq!(b, JsString::from(format!("{p}12y").as_str()));
    assert_eq!(c, JsString::from(format!("{p}12xz").as_str()));
    drop(s);
    drop(a);
    assert_eq!(c, JsString::from(format!("{p}12xz").as_str()));
    assert_eq!(b, JsString::from(format!("{p}12y").as_str()));
}

#[test]
fn concat_onto_latin1_then_utf16_and_surrogate_halves() {
    let mut s = JsString::from("é".repeat(1100).as_str());
    let mut model: Vec<u16> = units(&s);
    assert!(s.as_str().is_latin1());
    for _ in 0..3 {
        s = s.concat_onto(&[JsStr::latin1(b"ab")]);
        model.extend([u16::from(b'a'), u16::from(b'b')]);
    }
    s = s.concat_onto(&[JsStr::utf16(&[0xD83D])]);
    model.push(0xD83D);
    assert!(!s.as_str().is_latin1());
    s = s.concat_onto(&[JsStr::utf16(&[0xDE00]), JsStr::latin1(b"\xe9z")]);
    model.extend([0xDE00, 0xE9, u16::from(b'z')]);
    assert_eq!(units(&s), model);
    let n = s.len();
    assert_eq!(s.code_point_at(n - 4), CodePoint::Unicode('😀'));
    // A UTF-16 buffer takes Latin1 parts in place.
    let t = s.concat_onto(&[JsStr::latin1(b"q")]);
    model.push(u16::from(b'q'));
    assert_eq!(units(&t), model);
}

#[test]
fn concat_onto_short_and_empty() {
    let s = JsString::from("ab");
    let t = s.concat_onto(&[JsStr::latin1(b"cd")]);
    assert_eq!(
        t.kind(),
        JsStringKind::Latin1Sequence,
        "short results stay plain"
    );
    assert_eq!(t, JsString::from("abcd"));
    let e = StaticJsStrings::EMPTY_STRING.concat_onto(&[JsStr::EMPTY, JsStr::EMPTY]);
    assert_eq!(e, StaticJsStrings::EMPTY_STRING);
    let long = JsString::from("y".repeat(1024).as_str());
    let same = long.concat_onto(&[JsStr::EMPTY]);
    assert_eq!(same, long);
    let interned =
        StaticJsStrings::EMPTY_STRING.concat_onto(&[JsStr::latin1(b"len"), JsStr::latin1(b"gth")]);
    assert_eq!(
        interned.kind(),
        JsStringKind::Static,
        "still interned when short"
    );
}

#[test]
fn concat_onto_a_chain_is_amortised_and_bounded() {
    // 100,000 appends of 10 units: every view is right, and the buffers grow geometrically
    // (the number of distinct buffers is logarithmic).
    let mut s = StaticJsStrings::EMPTY_STRING;
    let mut buffers = std::collections::HashSet::new();
    let mut views = Vec::new();
    for i in 0..100_000u32 {
        let part = format!("{:09}\n", i);
        s = s.concat_onto(&[JsStr::latin1(part.as_bytes())]);
        if s.kind() == JsStringKind::Append {
            buffers.insert(s.as_str().as_latin1().unwrap().as_ptr() as usize);
        }
        if i % 9973 == 0 {
            views.push((s.clone(), s.len()));
        }
    }
    assert_eq!(s.len(), 1_000_000);
    assert!(buffers.len() < 20, "{} buffers", buffers.len());
    for (view, len) in views {
        assert_eq!(view.len(), len);
        let text = view.to_std_string().unwrap();
        for (i, line) in text.lines().enumerate() {
            assert_eq!(line, format!("{i:09}"));
        }
    }
    // Slices of a view keep it alive.
    let tail = s.slice(s.len() - 10, s.len());
    drop(s);
    assert_eq!(tail, JsString::from("000099999\n"));
}

#[test]
fn concat_onto_self_and_slices_of_self() {
    let s = JsString::from("ab".repeat(600).as_str()).concat_onto(&[JsStr::latin1(b"!")]);
    let s = s.concat_onto(&[JsStr::latin1(b"?")]);
    // Appending the string to itself, then a slice of itself, reads units below the tip.
    let d = s.concat_onto(&[s.as_str(), s.as_str().get(0..3).unwrap()]);
    let mut model = units(&s);
    model.extend(units(&s));
    model.extend(units(&s)[0..3].iter().copied());
    assert_eq!(units(&d), model);
}

// mcp-kernel patch: the search module keeps the searchers of the last needles; alternating
// needles, encodings and haystack sizes must give the same answers as a naive search.
#[test]
fn index_of_with_alternating_needles_matches_a_naive_search() {
    fn naive(hay: &[u16], needle: &[u16], from: usize) -> Option<usize> {
        (from..=hay.len().checked_sub(needle.len())?).find(|&i| hay[i..i + needle.len()] == *needle)
    }
    fn naive_last(hay: &[u16], needle: &[u16], from: usize) -> Option<usize> {
        let end = hay.len().checked_sub(needle.len())?;
        (0..=from.min(end))
            .rev()
            .find(|&i| hay[i..i + needle.len()] == *needle)
    }
    let latin1 = JsString::from("abcabcabcxabcab".repeat(12).as_str());
    let utf16 = JsString::from("ab\u{20ac}abcab\u{20ac}cxab".repeat(12).as_str());
    let needles = [
        JsString::from("ca"),
        JsString::from("bc"),
        JsString::from("\u{20ac}c"),
        JsString::from("xab"),
        JsString::from("b\u{20ac}"),
    ];
    for hay in [&latin1, &utf16] {
        let h = units(hay);
        for from in 0..=hay.len() {
            for needle in &needles {
                let n = units(needle);
                assert_eq!(hay.index_of(needle.as_str(), from), naive(&h, &n, from));
                assert_eq!(
                    hay.as_str().last_index_of(needle.as_str(), from),
                    naive_last(&h, &n, from)
                );
            }
        }
    }
}

// mcp-kernel patch: an append chain that never touches a sequence string (so Miri's Stacked
// Borrows can check `vtable/append.rs` alone: `seq_as_str` retags a zero-sized field).
#[test]
fn concat_onto_from_static_parts_only() {
    let chunk = [b'q'; 700];
    let wide = [0x20AC_u16; 3];
    let s =
        StaticJsStrings::EMPTY_STRING.concat_onto(&[JsStr::latin1(&chunk), JsStr::latin1(&chunk)]);
    assert_eq!(s.kind(), JsStringKind::Append);
    let t = s.concat_onto(&[JsStr::latin1(b"ab")]);
    let u = t.concat_onto(&[JsStr::latin1(b"cd")]);
    let fork = t.concat_onto(&[JsStr::utf16(&wide)]);
    let v = u.concat_onto(&[u.as_str().get(0..2).unwrap(), JsStr::utf16(&wide)]);
    drop(s);
    assert_eq!(t.len(), 1402);
    assert_eq!(u.as_str().get(1400..).unwrap(), JsStr::latin1(b"abcd"));
    assert_eq!(
        fork.as_str().get(1400..).unwrap(),
        JsStr::utf16(&[97, 98, 0x20AC, 0x20AC, 0x20AC])
    );
    assert_eq!(
        v.as_str().get(1404..).unwrap(),
        JsStr::utf16(&[113, 113, 0x20AC, 0x20AC, 0x20AC])
    );
    drop(t);
    drop(u);
    let w = v.concat_onto(&[JsStr::latin1(b"z")]);
    assert_eq!(w.len(), 1410);
    assert_eq!(w.code_unit_at(1409), Some(u16::from(b'z')));
}
