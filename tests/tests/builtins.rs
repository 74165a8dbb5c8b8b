//! Builtins that Boa 0.22 made quadratic, memory-hungry or fatal, patched in `vendor/` (see
//! vendor/README.md): their edge cases against Node 20, deep native recursion that must throw a
//! catchable `RangeError` and leave the worker alive, and `repeat` memory.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

/// Serialises a case's value so that `-0`, `NaN`, `Infinity` and `undefined` stay visible.
const SHOW: &str = "const show = v => JSON.stringify(v, (k, x) => typeof x === 'number' && \
    !Number.isFinite(x) ? String(x) : Object.is(x, -0) ? '-0' : x === undefined ? '<undefined>' : x);";

/// `(expression, show(expression) under Node 20)`, or `throws <name>`. The expected column was
/// produced by running each expression in Node 20 (`the_table_is_what_node_says` re-checks it).
const CASES: &[(&str, &str)] = &[
    (r#"'a,b,,c'.split(',')"#, r#"["a","b","","c"]"#),
    (r#"'abc'.split('')"#, r#"["a","b","c"]"#),
    (
        r#"'a\u{1F600}b'.split('')"#,
        r#"["a","\ud83d","\ude00","b"]"#,
    ),
    (r#"'a,b,c'.split(',', 2)"#, r#"["a","b"]"#),
    (r#"'a,b,c'.split(',', 0)"#, r#"[]"#),
    (r#"'a,b'.split(',', -1)"#, r#"["a","b"]"#),
    (r#"'a,b,c'.split(',', 2 ** 32 + 1)"#, r#"["a"]"#),
    (r#"'a,b,c'.split(',', NaN)"#, r#"[]"#),
    (r#"'a1b1c'.split(1)"#, r#"["a","b","c"]"#),
    (r#"'aundefinedb'.split(undefined)"#, r#"["aundefinedb"]"#),
    (r#"'anullb'.split(null)"#, r#"["a","b"]"#),
    (r#"''.split(',')"#, r#"[""]"#),
    (r#"''.split('')"#, r#"[]"#),
    (
        r#"'abc'.split({ [Symbol.split](s, lim) { return 'custom:' + s + ':' + lim; } }, 3)"#,
        r#""custom:abc:3""#,
    ),
    (
        r#"'a-b_c'.split({ toString() { return '-'; } })"#,
        r#"["a","b_c"]"#,
    ),
    (
        r#"'\u00e4\u00e4x\u00e4\u00e4'.split('x')"#,
        r#"["ää","ää"]"#,
    ),
    (
        r#"'\u00e4\u20ac\u00e4x\u20ac'.split('\u20ac')"#,
        r#"["ä","äx",""]"#,
    ),
    (r#"'abc\u20ac'.split('b')"#, r#"["a","c€"]"#),
    (r#"'abc'.split('\u20ac')"#, r#"["abc"]"#),
    (
        r#"'\u{1F600}x\u{1F600}'.split('\uDE00')"#,
        r#"["\ud83d","x\ud83d",""]"#,
    ),
    (r#"'abcabc'.indexOf('c', -0)"#, r#"2"#),
    (r#"'abcabc'.indexOf('c', NaN)"#, r#"2"#),
    (r#"'abcabc'.indexOf('c', Infinity)"#, r#"-1"#),
    (r#"'abcabc'.indexOf('c', -Infinity)"#, r#"2"#),
    (r#"'abcabc'.indexOf('c', -5)"#, r#"2"#),
    (r#"'abcabc'.indexOf('c', 2 ** 53)"#, r#"-1"#),
    (r#"'abcabc'.indexOf('c', 3.7)"#, r#"5"#),
    (r#"'abcabc'.indexOf('', 99)"#, r#"6"#),
    (r#"'abcabc'.indexOf('', 3)"#, r#"3"#),
    (r#"'abc'.indexOf('abcd')"#, r#"-1"#),
    (r#"'\u0100\u0001'.indexOf('\u0101')"#, r#"-1"#),
    (r#"'\u0100\u0001\u0101'.indexOf('\u0101')"#, r#"2"#),
    (r#"'x\u00e9\u20ac\u00e9'.indexOf('\u00e9', 2)"#, r#"3"#),
    (r#"'\u00e9abc'.indexOf('\u20ac')"#, r#"-1"#),
    (r#"'abcabc'.includes('a', 4)"#, r#"false"#),
    (r#"'abcabc'.includes('a', -Infinity)"#, r#"true"#),
    (r#"'abcabc'.includes('c', 2 ** 53)"#, r#"false"#),
    (r#"'abc'.includes('')"#, r#"true"#),
    (r#"'abcabc'.lastIndexOf('a')"#, r#"3"#),
    (r#"'abcabc'.lastIndexOf('a', 2)"#, r#"0"#),
    (r#"'abcabc'.lastIndexOf('a', -0)"#, r#"0"#),
    (r#"'abcabc'.lastIndexOf('a', NaN)"#, r#"3"#),
    (r#"'abcabc'.lastIndexOf('b', -Infinity)"#, r#"-1"#),
    (r#"'abcabc'.lastIndexOf('a', Infinity)"#, r#"3"#),
    (r#"'abcabc'.lastIndexOf('', 2)"#, r#"2"#),
    (r#"'abcabc'.lastIndexOf('', 99)"#, r#"6"#),
    (r#"'abcabc'.lastIndexOf('c', 0)"#, r#"-1"#),
    (r#"'aaaa'.lastIndexOf('aa')"#, r#"2"#),
    (r#"'aaaa'.lastIndexOf('aa', 1)"#, r#"1"#),
    (r#"'\u20aca\u20aca'.lastIndexOf('\u20aca')"#, r#"2"#),
    (r#"'\u20aca\u20aca'.lastIndexOf('a', 2)"#, r#"1"#),
    (r#"'\u0100\u0001'.lastIndexOf('\u0101')"#, r#"-1"#),
    (r#"'\u0101\u0100\u0001'.lastIndexOf('\u0101')"#, r#"0"#),
    (r#"'abc'.lastIndexOf('abcd')"#, r#"-1"#),
    (r#"'aaa'.replaceAll('a', 'b')"#, r#""bbb""#),
    (r#"'aaa'.replaceAll('aa', 'b')"#, r#""ba""#),
    (r#"'abc'.replaceAll('', '-')"#, r#""-a-b-c-""#),
    (r#"'a.b.c'.replaceAll('.', '$&$&')"#, r#""a..b..c""#),
    (
        r#"'x-y'.replaceAll('-', (m, p, s) => `[${m}${p}${s}]`)"#,
        r#""x[-1x-y]y""#,
    ),
    (
        r#"'abc'.replaceAll({ [Symbol.replace](s, r) { return 'R:' + s + r; } }, '!')"#,
        r#""R:abc!""#,
    ),
    (r#"'\u20acx\u20ac'.replaceAll('\u20ac', 'e')"#, r#""exe""#),
    (r#"'aXbx'.replaceAll(/x/gi, '_')"#, r#""a_b_""#),
    (
        r#"(() => { try { return 'a'.replaceAll(/a/, 'b'); } catch (e) { return e.name; } })()"#,
        r#""TypeError""#,
    ),
    (
        r#"'abc'.replace({ [Symbol.replace](s, r) { return 'R:' + s + r; } }, '!')"#,
        r#""R:abc!""#,
    ),
    (r#"'ab'.repeat(3)"#, r#""ababab""#),
    (r#"'\u20ac'.repeat(2)"#, r#""€€""#),
    (r#"''.repeat(5)"#, r#""""#),
    (r#"'x'.repeat(0)"#, r#""""#),
    (
        r#"(() => { try { return 'x'.repeat(-1); } catch (e) { return e.name; } })()"#,
        r#""RangeError""#,
    ),
    (
        r#"(() => { try { return 'x'.repeat(Infinity); } catch (e) { return e.name; } })()"#,
        r#""RangeError""#,
    ),
    (
        r#"(() => { try { return 'xy'.repeat(2 ** 31); } catch (e) { return e.name; } })()"#,
        r#""RangeError""#,
    ),
    (r#"'abc'.padStart(8, '12')"#, r#""12121abc""#),
    (r#"'abc'.padEnd(8, '\u20ac1')"#, r#""abc€1€1€""#),
    (r#"'abc'.padStart(2)"#, r#""abc""#),
    (r#"'abc'.padEnd(6, '')"#, r#""abc""#),
    (r#"'\u20ac'.padStart(4, 'ab')"#, r#""aba€""#),
    (r#"'a'.padEnd(5)"#, r#""a    ""#),
    (r#"'a1b22c333'.match(/\d+/g)"#, r#"["1","22","333"]"#),
    (
        r#"'line1\nERROR x\nline3\nERROR y'.match(/^ERROR.*$/gm)"#,
        r#"["ERROR x","ERROR y"]"#,
    ),
    (
        r#"[...'a1b2'.matchAll(/[a-z](\d)/g)].map(m => [m[0], m[1], m.index])"#,
        r#"[["a1","1",0],["b2","2",2]]"#,
    ),
    (r#"'a1b2c3'.replace(/\d/g, d => d * 2)"#, r#""a2b4c6""#),
    (r#"'a1b2'.split(/(\d)/)"#, r#"["a","1","b","2",""]"#),
    (r#"'abc'.split(/(?:)/)"#, r#"["a","b","c"]"#),
    (r#"'abc'.split(/(?:)/u)"#, r#"["a","b","c"]"#),
    (r#"'\u{1F600}\u{1F600}'.split(/(?:)/u)"#, r#"["😀","😀"]"#),
    (
        r#"'\u{1F600}\u{1F600}'.split(/(?:)/)"#,
        r#"["\ud83d","\ude00","\ud83d","\ude00"]"#,
    ),
    (r#"'a,b;c'.split(/[,;]/, 2)"#, r#"["a","b"]"#),
    (r#"'a,b,'.split(/(?<=,)/)"#, r#"["a,","b,"]"#),
    (
        r#"'price: 10 USD, 20 EUR'.match(/(?<=\s)\d+/g)"#,
        r#"["10","20"]"#,
    ),
    (r#"'xaxbxc'.split(/x/)"#, r#"["","a","b","c"]"#),
    (
        r#"'test'.split(/(t)?/)"#,
        r#"["","t","e","<undefined>","s","t",""]"#,
    ),
    (r#"'ab'.split(/a*?/)"#, r#"["a","b"]"#),
    (r#"'ab'.split(/a*/)"#, r#"["","b"]"#),
    (
        r#"'A<B>bold</B>and<CODE>coded</CODE>'.split(/<(\/)?([^<>]+)>/)"#,
        r#"["A","<undefined>","B","bold","/","B","and","<undefined>","CODE","coded","/","CODE",""]"#,
    ),
    (r#"'a,b,c'.split(/,/y)"#, r#"["a","b","c"]"#),
    (r#"''.split(/x/)"#, r#"[""]"#),
    (r#"''.split(/(?:)/)"#, r#"[]"#),
    (r#"'\u00e9x\u00e9'.split(/x/)"#, r#"["é","é"]"#),
    (r#"'\u20acx\u20ac'.match(/\u20ac/g)"#, r#"["€","€"]"#),
    (
        r#"'$10 \u20ac20 $30'.match(/(?<=\$)\d+/g)"#,
        r#"["10","30"]"#,
    ),
    (r#"'abcabc'.replace(/(?<!^)b/g, 'B')"#, r#""aBcaBc""#),
    (r#"'\u{1F600}a'.match(/./gu)"#, r#"["😀","a"]"#),
    (r#"'\u{1F600}a'.match(/./g).length"#, r#"3"#),
    (r#"'aaa'.match(/a*?/g)"#, r#"["","","",""]"#),
    (r#"'abc'.replace(/(?:)/g, '-')"#, r#""-a-b-c-""#),
    (r#"'\u{1F600}'.replace(/(?:)/gu, '-')"#, r#""-😀-""#),
    (
        r#"(() => { const re = /a/y; const out = []; for (let i = 0; i < 4; i++) out.push(re.test('aab'), re.lastIndex); return out; })()"#,
        r#"[true,1,true,2,false,0,true,1]"#,
    ),
    (
        r#"(() => { const re = /b/y; const s = 'aabab'; const out = []; for (const i of [0, 2, 1, 4, 3, 5, 2]) { re.lastIndex = i; const m = re.exec(s); out.push(m ? m.index : null, re.lastIndex); } return out; })()"#,
        r#"[null,0,2,3,null,0,4,5,null,0,null,0,2,3]"#,
    ),
    (
        r#"(() => { const re = /a/g; re.lastIndex = 3; const r = 'aXa'.match(re); return [r, re.lastIndex]; })()"#,
        r#"[["a","a"],0]"#,
    ),
    (
        r#"(() => { const re = /a/g; const r = 'aa'.replace(re, 'b'); return [r, re.lastIndex]; })()"#,
        r#"["bb",0]"#,
    ),
    (
        r#"(() => { const re = /a/y; re.lastIndex = 1; const r = 'ba'.replace(re, 'X'); return [r, re.lastIndex]; })()"#,
        r#"["bX",2]"#,
    ),
    (
        r#"(() => { const re = /\d/g; const s = 'a1b2c3'; const out = []; let m; while ((m = re.exec(s))) out.push(m[0], m.index, re.lastIndex); return out; })()"#,
        r#"["1",1,2,"2",3,4,"3",5,6]"#,
    ),
    (
        r#"(() => { const re = /o/g; const a = 'foo', b = 'boo'; return [re.exec(a).index, re.lastIndex, re.exec(b).index, re.lastIndex, re.exec(a), re.lastIndex]; })()"#,
        r#"[1,2,2,3,null,0]"#,
    ),
    (
        r#"(() => { const re = /o/g; const a = 'fo' + 'o'; const b = 'fo' + 'o'; return [re.exec(a).index, re.exec(b).index, re.exec(a), re.lastIndex]; })()"#,
        r#"[1,2,null,0]"#,
    ),
    (
        r#"(() => { const re = /x/g; re.lastIndex = 2; const m = re.exec('xx'); return [m, re.lastIndex]; })()"#,
        r#"[null,0]"#,
    ),
    (
        r#"(() => { const re = /,/g; re.lastIndex = 1; const r = 'a,b'.split(re); return [r, re.lastIndex]; })()"#,
        r#"[["a","b"],1]"#,
    ),
    (
        r#"(() => { class R extends RegExp {} return 'a1b2c'.split(new R('\\d')); })()"#,
        r#"["a","b","c"]"#,
    ),
    (
        // The prototypes are frozen (lockdown), so `exec` is overridden by a subclass, whose
        // instances the split's species constructor makes.
        r#"(() => { let calls = 0; class R extends RegExp { exec(s) { calls++; return super.exec(s); } } return ['a,b'.split(new R(',')), calls]; })()"#,
        r#"[["a","b"],3]"#,
    ),
    (
        // Defined, not assigned: the inherited `Symbol.split` is frozen (lockdown).
        r#"(() => { const re = /(\d)/; Object.defineProperty(re, Symbol.split, { value: (s, l) => 'own split ' + s + l }); return 'a1b'.split(re, 5); })()"#,
        r#""own split a1b5""#,
    ),
    (r#"'a\u{1F600}b'.split(/(?:)/v)"#, r#"["a","😀","b"]"#),
    (
        r#"'x\u{1F600}y\u{1F600}z'.split(/\u{1F600}/u)"#,
        r#"["x","y","z"]"#,
    ),
    (
        r#"'a1b22c333'.replace(/(?<d>\d+)/g, '[$<d>|$1|$&]')"#,
        r#""a[1|1|1]b[22|22|22]c[333|333|333]""#,
    ),
    (
        r#"'a1b22'.replace(/(?<d>\d)(x)?/g, (...args) => JSON.stringify(args))"#,
        r#""a[\"1\",\"1\",null,1,\"a1b22\",{\"d\":\"1\"}]b[\"2\",\"2\",null,3,\"a1b22\",{\"d\":\"2\"}][\"2\",\"2\",null,4,\"a1b22\",{\"d\":\"2\"}]""#,
    ),
    (
        r#"(() => { const re = /\d/g; const seen = []; const r = 'a1b2'.replace(re, d => { seen.push(re.lastIndex); return 'x'; }); return [r, seen, re.lastIndex]; })()"#,
        r#"["axbx",[0,0],0]"#,
    ),
    (r#"'abc'.replace(/b/g, "$`|$'")"#, r#""aa|cc""#),
    (
        r#"['aab'.match(/a/gy), 'baa'.replace(/a/gy, 'X'), 'aab'.replace(/a/gy, 'X')]"#,
        r#"[["a","a"],"baa","XXb"]"#,
    ),
    (
        r#"(() => { const re = /a/g; let calls = 0; Object.defineProperty(re, 'exec', { value(s) { calls++; return RegExp.prototype.exec.call(this, s); } }); return ['aXa'.match(re), 'aXa'.replace(re, 'b'), calls]; })()"#,
        r#"[["a","a"],"bXb",6]"#,
    ),
    (
        r#"['\u{1F600}\u{1F600}'.replace(/(?:)/gu, '-'), '\u{1F600}'.match(/(?:)/g).length, 'a\u{1F600}'.replace(/(?:)/gv, '-')]"#,
        r#"["-😀-😀-",3,"-a-😀-"]"#,
    ),
    (
        r#"(() => { const re = /a/g; Object.defineProperty(re, 'lastIndex', { writable: false }); try { 'aa'.match(re); return 'no throw'; } catch (e) { return e.name; } })()"#,
        r#""TypeError""#,
    ),
    (
        r#"['abc'.match(/x/g), 'abc'.replace(/x/g, 'y'), 'xxx'.replace(/x/g, '$$')]"#,
        r#"[null,"abc","$$$"]"#,
    ),
    (
        r#"(() => { const re = /(a)|(b)/g; return 'ab'.replace(re, (m, a, b, i) => [m, a, b, i].join(':') + ';'); })()"#,
        r#""a:a::0;b::b:1;""#,
    ),
    (
        r#"['a.b.c'.split(/\./), 'a/b'.split(/\//), 'x-y'.split(/-/), 'a\tb'.split(/\t/), 'a^b$c'.split(/\^|\$/), 'A\nB\r\nC'.split(/\n/)]"#,
        r#"[["a","b","c"],["a","b"],["x","y"],["a","b"],["a","b","c"],["A","B\r","C"]]"#,
    ),
    (
        r#"(() => { const re = /ab/g; const out = []; let m; while ((m = re.exec('xabyab'))) out.push(m.index, re.lastIndex, m[0]); return out; })()"#,
        r#"[1,3,"ab",4,6,"ab"]"#,
    ),
    (
        r#"(() => { const re = /ab/y; re.lastIndex = 1; return [re.test('xab'), re.lastIndex, re.test('xab'), re.lastIndex]; })()"#,
        r#"[true,3,false,0]"#,
    ),
    (
        r#"['ABab'.match(/ab/gi), 'aXbXc'.replace(/X/g, '-'), 'abc'.search(/c/), 'abab'.match(/ba/)]"#,
        r#"[["AB","ab"],"a-b-c",2,["ba"]]"#,
    ),
    (
        r#"['\u{1F600}a\u{1F600}'.match(/\u{1F600}/gu), '\u{1F600}a\u{1F600}'.match(/😀/g).length, '\u{1F600}a'.split(/a/u)]"#,
        r#"[["😀","😀"],2,["😀",""]]"#,
    ),
    (
        r#"(() => { const re = /b/g; re.lastIndex = 2; return [re.exec('abcb').index, re.lastIndex, re.exec('abcb'), re.lastIndex]; })()"#,
        r#"[3,4,null,0]"#,
    ),
    (
        r#"[...'took 5ms, took 12ms; tooook'.matchAll(/took (\d+)ms/g)].map(m => [m.index, m[1]])"#,
        r#"[[0,"5"],[10,"12"]]"#,
    ),
    (
        r#"['ac abc abbc'.match(/ab?c/g), 'xaay'.match(/a+y/g), 'aXbY'.match(/a|b/g), 'a.b'.match(/a\.?b/g), 'a1 a22'.match(/a\d{2}/g)]"#,
        r#"[["ac","abc"],["aay"],["a","b"],["a.b"],["a22"]]"#,
    ),
    (
        r#"['ab ab'.replace(/b\b/g, 'B'), 'x=1;y=2'.replace(/=(\d)/g, ':$1'), 'aaa'.match(/a(?=a)/g)]"#,
        r#"["aB aB","x:1;y:2",["a","a"]]"#,
    ),
    (
        r#"JSON.parse(' {"b": 1, "2": [true, false, null], "1": {"x": -0}, "a": "s"} ')"#,
        r#"{"1":{"x":"-0"},"2":[true,false,null],"b":1,"a":"s"}"#,
    ),
    (
        r#"Object.keys(JSON.parse('{"b":1,"2":2,"a":3,"1":4}'))"#,
        r#"["1","2","b","a"]"#,
    ),
    (r#"JSON.parse('{"a":1,"b":2,"a":3}')"#, r#"{"a":3,"b":2}"#),
    (
        r#"Object.keys(JSON.parse('{"a":1,"b":2,"a":3}'))"#,
        r#"["a","b"]"#,
    ),
    (
        r#"(() => { const o = JSON.parse('{"__proto__": {"x": 1}}'); return [Object.getPrototypeOf(o) === Object.prototype, Object.keys(o), o.__proto__.x]; })()"#,
        r#"[true,["__proto__"],1]"#,
    ),
    (r#"Object.is(JSON.parse('-0'), -0)"#, r#"true"#),
    (
        r#"JSON.parse('[1e400, -1e400, 1.7976931348623157e308, 5e-324, 0.1, 123456789012345678901234567890, -2147483648, 2147483648, 1E2, 1e+2, 1.5e-2]')"#,
        r#"["Infinity","-Infinity",1.7976931348623157e+308,5e-324,0.1,1.2345678901234568e+29,-2147483648,2147483648,100,100,0.015]"#,
    ),
    (
        r#"JSON.parse('"\\ud800\\u00e9\\n\\t\\"\\\\\\/\\b\\f\\r"').split('').map(c => c.charCodeAt(0))"#,
        r#"[55296,233,10,9,34,92,47,8,12,13]"#,
    ),
    (r#"JSON.parse('"\u20ac\u00e9x"')"#, r#""€éx""#),
    (
        r#"JSON.parse('[[[[[]]]], {}, [{}], ""]')"#,
        r#"[[[[[]]]],{},[{}],""]"#,
    ),
    (r#"JSON.parse('\t\n\r 7 \t\n\r')"#, r#"7"#),
    (
        r#"(() => { try { return JSON.parse('[1,]'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('01'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse("{'a': 1}"); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('"a\u0001"'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('"abc'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse(''); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('1 2'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('-'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('1.'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('"\\x41"'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('"\\u12"'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('nul'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('{"a" 1}'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"(() => { try { return JSON.parse('+1'); } catch (e) { return e.name; } })()"#,
        r#""SyntaxError""#,
    ),
    (
        r#"JSON.parse('[' .repeat(10000) + ']'.repeat(10000)).length"#,
        r#"1"#,
    ),
    (
        r#"JSON.parse('{"a":[1,{"b":"\u20ac"}]}', (k, v) => typeof v === 'number' ? v * 2 : v)"#,
        r#"{"a":[2,{"b":"€"}]}"#,
    ),
    (r#"JSON.parse(12)"#, r#"12"#),
    (r#"JSON.parse(null)"#, r#"null"#), // Concatenation appends in place to an append buffer (vendor/boa_string/src/vtable/append.rs);
    // results of 1024 code units or more take that path.
    (
        r#"(() => { let s = 'a'.repeat(2000); for (let i = 0; i < 50; i++) s += 'bc'; s += '\u20ac'; s += 'd\u00e9'; return [s.length, s.slice(-5), s.charCodeAt(2100), s.indexOf('\u20ac')]; })()"#,
        r#"[2103,"bc€dé",8364,2100]"#,
    ),
    (
        r#"(() => { let s = 'x'.repeat(1500); s += '\uD83D'; const half = s; s += '\uDE00'; return [s.length, s.codePointAt(1500), s.slice(-2) === '\u{1F600}', [...s.slice(-3)].length, half.length, half.charCodeAt(1500)]; })()"#,
        r#"[1502,128512,true,2,1501,55357]"#,
    ),
    (
        r#"(() => { let s = 'p'.repeat(1200); s += 'q'; s += 'r'; const a = s + 'x', b = s + 'y', c = a + 'z'; s += 'w'; const d = s + '\u20ac'; return [a.slice(-4), b.slice(-4), c.slice(-5), s.slice(-4), d.slice(-3), a.length, b.length, c.length, s.length]; })()"#,
        r#"["pqrx","pqry","pqrxz","pqrw","rw€",1203,1203,1204,1203]"#,
    ),
    (
        r#"(() => { let s = 'p'.repeat(1200); const snaps = []; for (let i = 0; i < 300; i++) { snaps.push(s); s += String.fromCharCode(65 + i % 26); } return snaps.every((t, i) => t.length === 1200 + i && s.startsWith(t)) && snaps[299].slice(-3); })()"#,
        r#""KLM""#,
    ),
    (
        r#"(() => { let s = 'e'.repeat(1100); const t = s; s += ''; s = '' + s; s = `${''}${s}${''}`; s = s.concat('', ''); return [s === t, s.length, '' + '', `${''}`, ''.concat()]; })()"#,
        r#"[true,1100,"","",""]"#,
    ),
    (
        r#"(() => { let s = ''; for (let i = 0; i < 3000; i++) s = `${s}${i % 10}`; let u = ''; for (let i = 0; i < 700; i++) u = `${u}<${i}>`; return [s.length, s.slice(0, 12), s.slice(-5), u.length, u.slice(-7)]; })()"#,
        r#"[3000,"012345678901","56789",3390,"8><699>"]"#,
    ),
    (
        r#"(() => { const base = 'c'.repeat(1100); const r = base.concat(1, null, undefined, { toString() { return '\u20ac'; } }, [2, 3]); return [r.length, r.slice(1099)]; })()"#,
        r#"[1118,"c1nullundefined€2,3"]"#,
    ),
    (
        r#"(() => { const log = []; try { 'a'.repeat(2000).concat({ toString() { log.push(1); return 'x'; } }, { toString() { throw new Error('boom'); } }, { toString() { log.push(3); return 'z'; } }); } catch (e) { log.push(e.message); } return log; })()"#,
        r#"[1,"boom"]"#,
    ),
    (
        r#"(() => { let s = 'n'.repeat(1100); s += 1; s += true; s += null; s += undefined; s += {}; s += [1, [2]]; s += 1n; s = 5 + s; s = s + -0; return [s.length, s.slice(0, 3), s.slice(-40)]; })()"#,
        r#"[1139,"5nn","nn1truenullundefined[object Object]1,210"]"#,
    ),
    (
        r#"(() => { let s = 'z'.repeat(1100); s += '\uD800'; s += 'a'; s += '\uDC00'; return [s.length, s.charCodeAt(1100), s.charCodeAt(1102), s.isWellFormed()]; })()"#,
        r#"[1103,55296,56320,false]"#,
    ),
    (
        r#"(() => { let s = ''; for (let i = 0; i < 20000; i++) s += i + '\n'; const lines = s.split('\n'); return [s.length, lines.length, lines.every((l, i) => i === 20000 ? l === '' : l === String(i))]; })()"#,
        r#"[108890,20001,true]"#,
    ),
    (
        r#"(() => { let s = '\u20ac'.repeat(600); for (let i = 0; i < 1000; i++) s += i % 2 ? 'ab' : '\u00ff'; s += s; return [s.length, s.slice(1198, 1203), s.lastIndexOf('\u20ac')]; })()"#,
        r#"[4200,"abÿab",2699]"#,
    ),
    // replaceAll builds its result from borrowed parts and reuses a `$`-free replacement;
    // searches reuse the searcher of the last needle (vendor/boa_string/src/str.rs).
    (
        r#"(() => { const s = 'ab'.repeat(40); return [s.replaceAll('b', '$&$`').length, s.replaceAll('ab', "$'").length, 'aXa'.replaceAll('a', '$$'), 'xy'.replaceAll('', '$`|'), 'a-b'.replaceAll('-', '$0$1$<n>')]; })()"#,
        r#"[1680,1560,"$X$","|xx|yxy|","a$0$1$<n>b"]"#,
    ),
    (
        r#"(() => { const seen = []; const r = 'a-b-c'.replaceAll('-', (m, p, s) => { seen.push(m + p + s.length); return seen.length; }); return [r, seen]; })()"#,
        r#"["a1b2c",["-15","-35"]]"#,
    ),
    (
        r#"(() => { let n = 0; try { 'a-b-c-d'.replaceAll('-', () => { if (++n === 2) throw new Error('stop'); return '+'; }); } catch (e) { return [n, e.message]; } })()"#,
        r#"[2,"stop"]"#,
    ),
    (
        r#"(() => { const r = 'a\u20acb\u20ac'.replaceAll('\u20ac', '\u00e9'); const t = 'x'.repeat(70).replaceAll('x', '\u20ac'); return [r, t.length, t.charCodeAt(69), 'abc'.replaceAll('abc', ''), 'abab'.replaceAll('b', { toString() { return 'B'; } })]; })()"#,
        r#"["aébé",70,8364,"","aBaB"]"#,
    ),
    (
        r#"(() => { const s = 'abcabcabcxabcab'.repeat(12); let n = 0; for (let i = 0; i <= s.length; i++) n += s.indexOf('ca', i) + s.indexOf('bc', i) * 3 + s.lastIndexOf('xab', i) * 7 + (s.includes('cab', i) ? 11 : 0); return n; })()"#,
        r#"171073"#,
    ),
    (
        r#"(() => { const s = 'ab\u20acabcab\u20accxab'.repeat(12); let n = 0; for (let i = 0; i <= s.length; i++) n += s.indexOf('\u20acc', i) + s.indexOf('ab', i) * 3 + s.lastIndexOf('b\u20ac', i) * 7 + (s.includes('cxa', i) ? 11 : 0); return n; })()"#,
        r#"133147"#,
    ),
];

/// One script evaluating every case, each in its own try/catch, returning the list of results.
fn all_cases_script() -> String {
    let cases: Vec<String> = CASES
        .iter()
        .map(|(js, _)| {
            format!("(() => {{ try {{ return show({js}); }} catch (e) {{ return 'throws ' + e.name; }} }})()")
        })
        .collect();
    format!("{SHOW}\nreturn [\n{}\n];", cases.join(",\n"))
}

fn mismatches(actual: &[Value]) -> Vec<String> {
    assert_eq!(actual.len(), CASES.len(), "one result per case");
    CASES
        .iter()
        .zip(actual)
        .filter(|((_, expected), actual)| actual.as_str() != Some(expected))
        .map(|((js, expected), actual)| {
            format!("{js}\n    expected {expected}\n    got      {actual}")
        })
        .collect()
}

#[tokio::test]
async fn builtin_edge_cases_match_node() {
    let server = Server::start().await;
    let result = server.execute(&all_cases_script()).await;
    assert!(!result.is_error(), "{}", result.text());
    let actual = result.value().as_array().expect("an array of results");
    let wrong = mismatches(actual);
    assert!(
        wrong.is_empty(),
        "{} cases differ from Node:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The expected column is Node's answer: run the same script under `node` (required).
#[test]
fn the_table_is_what_node_says() {
    let script = format!(
        "const r = (() => {{ {} }})(); console.log(JSON.stringify(r));",
        all_cases_script()
    );
    let output = std::process::Command::new(mcpk_tests::upstream::node())
        .args(["-e", &script])
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "node: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let actual: Vec<Value> = serde_json::from_slice(&output.stdout).expect("node's JSON");
    let wrong = mismatches(&actual);
    assert!(
        wrong.is_empty(),
        "the table disagrees with Node:\n{}",
        wrong.join("\n")
    );
}

/// Runs `code` (which catches and returns the error's name) on a session's worker, and checks
/// that it returned `RangeError`, that the next call works, and that the same worker process
/// served all three calls (it did not die and get replaced).
async fn range_error_on_the_same_worker(code: &str) {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    assert_eq!(
        server.execute("mcp.state.n = 1; 'set'").await.value(),
        &json!("set")
    );
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "one session, no warm pool: {workers:?}");
    let result = server.execute(code).await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &json!("RangeError"));
    assert_eq!(server.execute("mcp.state.n + 1").await.value(), &json!(2));
    assert_eq!(server.workers(), workers, "the same worker lives on");
}

#[tokio::test]
async fn json_stringify_of_200k_nested_objects_throws_range_error() {
    range_error_on_the_same_worker(
        "const deep = {}; let o = deep; for (let i = 0; i < 200000; i++) { o.a = {}; o = o.a; } \
         try { JSON.stringify(deep); return 'no error'; } catch (e) { return e.name; }",
    )
    .await;
}

#[tokio::test]
async fn json_stringify_of_200k_nested_arrays_throws_range_error() {
    range_error_on_the_same_worker(
        "let deep = []; for (let i = 0; i < 200000; i++) deep = [deep]; \
         try { JSON.stringify(deep); return 'no error'; } catch (e) { return e.name; }",
    )
    .await;
}

#[tokio::test]
async fn string_of_a_deeply_nested_array_throws_range_error() {
    range_error_on_the_same_worker(
        "let deep = [1]; for (let i = 0; i < 200000; i++) deep = [deep, 2]; \
         try { String(deep); return 'no error'; } catch (e) { return e.name; }",
    )
    .await;
}

#[tokio::test]
async fn join_and_flat_of_deeply_nested_arrays_throw_range_error() {
    range_error_on_the_same_worker(
        "let deep = [1]; for (let i = 0; i < 200000; i++) deep = [deep]; \
         const names = []; \
         try { deep.join('-'); } catch (e) { names.push(e.name); } \
         try { deep.flat(Infinity); } catch (e) { names.push(e.name); } \
         return names.length === 2 && names[0] === names[1] ? names[0] : names.join();",
    )
    .await;
}

#[tokio::test]
async fn eval_of_100k_nested_parentheses_throws_range_error() {
    range_error_on_the_same_worker(
        "const src = '('.repeat(100000) + '1' + ')'.repeat(100000); \
         try { eval(src); return 'no error'; } catch (e) { return e.name; }",
    )
    .await;
}

#[tokio::test]
async fn new_function_of_deeply_nested_source_throws_range_error() {
    range_error_on_the_same_worker(
        "const src = 'return ' + '['.repeat(100000) + ']'.repeat(100000); \
         try { new Function(src); return 'no error'; } catch (e) { return e.name; }",
    )
    .await;
}

#[tokio::test]
async fn a_chain_of_200k_proxies_throws_range_error() {
    // Each link forwards [[Get]] to its target natively; Node throws a RangeError too.
    range_error_on_the_same_worker(
        "let p = {x: 1}; for (let i = 0; i < 200000; i++) p = new Proxy(p, {}); \
         try { return p.x === 1 ? 'no error' : 'wrong'; } catch (e) { return e.name; }",
    )
    .await;
}

#[tokio::test]
async fn native_functions_calling_native_functions_throw_range_error() {
    // `Reflect.apply` of `Reflect.apply` ... has no JavaScript frame between the levels
    // (Node returns 7 here: V8's native frames are smaller).
    range_error_on_the_same_worker(
        "let a = [() => 7, null, []]; for (let i = 0; i < 200000; i++) a = [Reflect.apply, null, a]; \
         try { return Reflect.apply(...a) === 7 ? 'no error' : 'wrong'; } catch (e) { return e.name; }",
    )
    .await;
}

#[tokio::test]
async fn to_locale_string_of_deeply_nested_arrays_throws_range_error() {
    range_error_on_the_same_worker(
        "let a = [1]; for (let i = 0; i < 200000; i++) a = [a]; \
         try { a.toLocaleString(); return 'no error'; } catch (e) { return e.name; }",
    )
    .await;
}

#[tokio::test]
async fn nesting_as_deep_as_node_allows_works() {
    // Node 20's limits, measured with `node -e` by bisection: 1,638 nested parentheses in
    // `eval`, 2,009 nested array literals, 3,210 levels for `String()` of arrays and 4,173 for
    // `JSON.stringify`. The worker's stack (`RLIMIT_STACK`, see kernel/src/sandbox.rs) lets
    // agent code go at least as deep; with the 8 MiB default it stopped at about 150 brackets.
    let server = Server::start().await;
    let depth = 1_500;
    let code = format!(
        "const inline = {open}1{close}; \
         const viaEval = eval('('.repeat({depth}) + '2' + ')'.repeat({depth})); \
         const lit = eval('['.repeat({depth}) + ']'.repeat({depth})); \
         let d = [1]; for (let i = 0; i < 3000; i++) d = [d]; \
         let e = []; for (let i = 0; i < 4000; i++) e = [e]; \
         return [inline, viaEval, Array.isArray(lit), String(d), JSON.stringify(e).length];",
        open = "(".repeat(depth),
        close = ")".repeat(depth),
    );
    let result = server.execute(&code).await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &json!([1, 2, true, "1", 8002]));
}

#[tokio::test]
async fn moderately_nested_data_still_works() {
    // Real data and code nest a few levels; these depths stay well inside the stack bound.
    let server = Server::start().await;
    let result = server
        .execute(
            "let deep = []; for (let i = 0; i < 1000; i++) deep = [deep]; \
             let shallow = []; for (let i = 0; i < 300; i++) shallow = [shallow]; \
             const o = {}; let p = o; for (let i = 0; i < 1000; i++) { p.a = {}; p = p.a; } \
             const src = '('.repeat(60) + '1' + ')'.repeat(60); \
             return [JSON.stringify(deep).length, JSON.stringify(o).length, String(shallow), \
               eval(src), ((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))];",
        )
        .await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &json!([2002, 6002, "", 1, 1]));
}

#[tokio::test]
async fn user_code_nested_too_deep_fails_as_an_error_and_the_worker_lives() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    assert_eq!(
        server.execute("mcp.state.n = 1; 'set'").await.value(),
        &json!("set")
    );
    let workers = server.workers();
    let code = format!("return {}1{};", "(".repeat(100_000), ")".repeat(100_000));
    let result = server.execute(&code).await;
    assert!(result.is_error(), "{}", result.text());
    assert_eq!(result.error_name(), "RangeError");
    result.assert_message_contains(&["Maximum call stack size exceeded"]);
    assert_eq!(server.execute("mcp.state.n + 1").await.value(), &json!(2));
    assert_eq!(server.workers(), workers, "the same worker lives on");
}

#[tokio::test]
async fn repeat_of_50_mib_fits_under_the_default_memory_limit() {
    // 256 MiB address space by default; the result is 50 MiB of Latin1.
    let server = Server::start().await;
    let result = server
        .execute(
            "const s = 'x'.repeat(50 * 2 ** 20); \
             const p = 'ab'.padEnd(50 * 2 ** 20, 'cd'); \
             return [s.length, s[s.length - 1], p.length, p.slice(-3)];",
        )
        .await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &json!([52_428_800, "x", 52_428_800, "dcd"]));
}

#[tokio::test]
async fn appending_near_the_default_memory_limit_falls_back_to_exact_buffers() {
    // 256 MiB address space by default. From an 80 MiB string, eight 1 MiB appends reach
    // 88 MiB: the doubled buffer a chain asks for (164 MiB beside the 81 MiB one) does not
    // fit, so each append takes an exact buffer, as a flat concatenation would.
    let server = Server::start().await;
    let result = server
        .execute_with(json!({
            "code": "let s = 'y'.repeat(80 * 2 ** 20); const chunk = 'x'.repeat(2 ** 20); \
                     for (let i = 0; i < 8; i++) s += chunk; \
                     return [s.length, s[80 * 2 ** 20 - 1], s[80 * 2 ** 20], s[s.length - 1]];",
            "timeout_ms": 30_000,
        }))
        .await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &json!([92_274_688, "y", "x", "x"]));
}

#[tokio::test]
async fn a_long_chain_of_appends_builds_100k_lines_of_text() {
    // `s += line` a hundred thousand times (~1.3 MB), Latin1 until line 50,000 brings a `€`:
    // every line reads back in order.
    let server = Server::start().await;
    let result = server
        .execute(
            "const line = i => `line ${i} ${i === 50000 ? '\\u20ac' : '\\u00e9'}`; \
             let s = ''; for (let i = 0; i < 100000; i++) s += line(i) + '\\n'; \
             const lines = s.split('\\n'); \
             return [s.length, lines.length, lines.every((l, i) => i === 100000 || l === line(i))];",
        )
        .await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &json!([1_288_890, 100_001, true]));
}
