use time::OffsetDateTime;
use time::macros::datetime;

use super::*;

fn p(s: &str) -> Filter {
    match parse(s) {
        Ok(Some(f)) => f,
        other => panic!("{s:?} gave {other:?}"),
    }
}

fn err(s: &str) -> FilterError {
    match parse(s) {
        Err(e) => e,
        Ok(f) => panic!("{s:?} parsed as {f:?}"),
    }
}

fn cmp(field: Field, op: CompareOp, value: Value) -> Filter {
    Filter::Compare { field, op, value }
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn name_is(s: &str) -> Filter {
    cmp(Field::Name, CompareOp::Eq, string(s))
}

fn not(f: Filter) -> Filter {
    Filter::Not(Box::new(f))
}

#[test]
fn field_names_round_trip() {
    for field in Field::ALL {
        assert_eq!(Field::from_wire(field.wire_name()), Some(field));
    }
    assert_eq!(Field::from_wire("Name"), None);
    assert_eq!(Field::InsertTime.value_type(), ValueType::Timestamp);
    assert_eq!(Field::HttpErrorStatusCode.value_type(), ValueType::Integer);
    assert_eq!(Field::Zone.value_type(), ValueType::String);
}

#[test]
fn empty_input_is_no_filter() {
    assert_eq!(parse(""), Ok(None));
    assert_eq!(parse("  \t\n "), Ok(None));
}

#[test]
fn each_operator() {
    use CompareOp::*;
    let cases = [
        ("=", Eq),
        ("!=", Ne),
        ("<", Lt),
        (">", Gt),
        ("<=", Le),
        (">=", Ge),
        (":", Eq),
    ];
    for (symbol, op) in cases {
        let expected = cmp(Field::Progress, op, Value::Integer(5));
        assert_eq!(p(&format!("progress {symbol} 5")), expected, "{symbol}");
        assert_eq!(p(&format!("progress{symbol}5")), expected, "{symbol}");
    }
    assert_eq!(p("zone:*"), Filter::Present(Field::Zone));
    assert_eq!(p("zone : *"), Filter::Present(Field::Zone));
    // Quoted, the star is just a string.
    assert_eq!(p("zone:'*'"), cmp(Field::Zone, CompareOp::Eq, string("*")));
}

#[test]
fn value_forms() {
    assert_eq!(p(r#"name = "a\"b\\c""#), name_is(r#"a"b\c"#));
    assert_eq!(p(r"name = 'it\'s'"), name_is("it's"));
    assert_eq!(p(r#"name = 'say "hi"'"#), name_is(r#"say "hi""#));
    assert_eq!(p(r#"name = "a\.b""#), name_is(r"a\.b"));
    assert_eq!(p(r#"name = """#), name_is(""));
    assert_eq!(p("name = a(b"), name_is("a(b"));
    assert_eq!(p("name = héllo-wörld"), name_is("héllo-wörld"));
    assert_eq!(p("name = \"a b)\""), name_is("a b)"));
    assert_eq!(
        p("description = true"),
        cmp(Field::Description, CompareOp::Eq, string("true"))
    );
    assert_eq!(
        p("id = 42"),
        cmp(Field::Id, CompareOp::Eq, Value::Integer(42))
    );
    assert_eq!(
        p("httpErrorStatusCode >= -404"),
        cmp(
            Field::HttpErrorStatusCode,
            CompareOp::Ge,
            Value::Integer(-404)
        )
    );
    assert_eq!(
        p("progress = \"50\""),
        cmp(Field::Progress, CompareOp::Eq, Value::Integer(50))
    );
    let t = Value::Timestamp(datetime!(2026-01-01 0:00 UTC));
    assert_eq!(
        p("insertTime > 2026-01-01T00:00:00Z"),
        cmp(Field::InsertTime, CompareOp::Gt, t.clone())
    );
    assert_eq!(
        p("insertTime>'2026-01-01T01:00:00+01:00'"),
        cmp(Field::InsertTime, CompareOp::Gt, t)
    );
    assert_eq!(
        p("status = DONE"),
        cmp(Field::Status, CompareOp::Eq, string("DONE"))
    );
    assert_eq!(
        p("operationType = anything.goes"),
        cmp(Field::OperationType, CompareOp::Eq, string("anything.goes"))
    );
}

#[test]
fn negation() {
    let done = cmp(Field::Status, CompareOp::Eq, string("DONE"));
    assert_eq!(p("NOT status = DONE"), not(done.clone()));
    assert_eq!(p("-status = DONE"), not(done.clone()));
    assert_eq!(p("NOT(status = DONE)"), not(done.clone()));
    assert_eq!(
        p("-(status = DONE OR zone:*)"),
        not(Filter::Or(vec![done, Filter::Present(Field::Zone)]))
    );
    // NOTE is a word, not the keyword: here it is an unknown field.
    assert_eq!(err("NOTE = x").position, 0);
    assert_eq!(err("NOT NOT zone:*").position, 4);
}

#[test]
fn parentheses_and_implicit_and() {
    let a = name_is("a");
    let z = Filter::Present(Field::Zone);
    let both = Filter::And(vec![a.clone(), z.clone()]);
    assert_eq!(p("((name = a))"), a);
    assert_eq!(p("name = a zone:*"), both);
    assert_eq!(p("(name = a) (zone:*)"), both);
    assert_eq!(p("(name=a)(zone:*)"), both);
    assert_eq!(p("name = a AND zone:*"), both);
    assert_eq!(
        p("name = a AND zone:* AND region:*").to_string(),
        "name = \"a\" AND zone:* AND region:*"
    );
}

#[test]
fn precedence() {
    let [a, b, c] = ["a", "b", "c"].map(name_is);
    let or_bc = Filter::Or(vec![b.clone(), c.clone()]);
    assert_eq!(
        p("name = a AND name = b OR name = c"),
        Filter::And(vec![a.clone(), or_bc.clone()])
    );
    assert_eq!(
        p("name = a name = b OR name = c"),
        Filter::And(vec![a.clone(), or_bc.clone()])
    );
    assert_eq!(
        p("NOT name = a OR name = b"),
        Filter::Or(vec![not(a.clone()), b.clone()])
    );
    assert_eq!(
        p("name = a OR name = b name = c"),
        Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        p("name = a name = b AND name = c"),
        Filter::And(vec![Filter::And(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        p("(name = a AND name = b) OR name = c"),
        Filter::Or(vec![Filter::And(vec![a, b]), c])
    );
}

fn regex_parts(f: &Filter) -> (Field, &str, bool) {
    match f {
        Filter::Regex {
            field,
            pattern,
            negated,
        } => (*field, pattern.as_str(), *negated),
        other => panic!("not a regex: {other:?}"),
    }
}

#[test]
fn regex_form() {
    assert_eq!(
        regex_parts(&p("name eq 'operation-.*'")),
        (Field::Name, "^(?:operation-.*)$", false)
    );
    assert_eq!(
        regex_parts(&p("status ne DONE")),
        (Field::Status, "^(?:DONE)$", true)
    );
    assert_eq!(
        regex_parts(&p(r#"targetLink eq "https://x/.*\.json""#)),
        (Field::TargetLink, r"^(?:https://x/.*\.json)$", false)
    );
    assert_eq!(
        regex_parts(&p("id eq '1[0-9]+'")),
        (Field::Id, "^(?:1[0-9]+)$", false)
    );
    let Filter::And(terms) = p("(name eq 'operation-.*') (status ne DONE)") else {
        panic!("expected And");
    };
    assert_eq!(regex_parts(&terms[0]).0, Field::Name);
    assert_eq!(regex_parts(&terms[1]), (Field::Status, "^(?:DONE)$", true));
    // Lower-case status values are fine for a pattern.
    assert!(parse("status eq 'd.*'").is_ok());
}

#[test]
fn regex_matches_whole_value() {
    let op =
        |name: &'static str| move |f: Field| (f == Field::Name).then_some(FieldValue::Str(name));
    assert!(!p("name eq 'op'").matches(&op("operation-x")));
    assert!(p("name eq 'op'").matches(&op("op")));
    assert!(p("name ne 'op'").matches(&op("operation-x")));
    assert!(!p("name eq 'a|b'").matches(&op("ab")));
}

#[test]
fn regex_errors() {
    let e = err("name eq 'a(b'");
    assert_eq!(e.position, 8);
    assert!(e.message.contains("unclosed group"), "{e}");
    // Would escape the anchoring group if it were not checked on its own.
    assert_eq!(err("name eq 'a)|(b'").position, 8);
    let e = err("name eq 'x{1000}{1000}'");
    assert_eq!(e.position, 8);
    assert!(e.message.contains("too large"), "{e}");
    let terms = |n: usize| "(name eq a) ".repeat(n);
    assert!(parse(&terms(MAX_PATTERNS)).is_ok());
    let e = err(&terms(MAX_PATTERNS + 1));
    assert_eq!(e.position, MAX_PATTERNS * 12 + 9);
    assert!(e.message.contains("at most"), "{e}");
    let e = err("insertTime eq '2026.*'");
    assert_eq!(e.position, 11);
    assert!(e.message.contains("timestamp"), "{e}");
    assert_eq!(err("name eq").position, 7);
    assert_eq!(err("name eq ").position, 8);
    assert_eq!(err("name EQ x").position, 5);
}

#[test]
fn mixing_syntaxes() {
    let e = err("(name eq a) (status = DONE)");
    assert_eq!(e.position, 20);
    assert!(e.message.contains("cannot be mixed"), "{e}");
    assert_eq!(err("(status = DONE) (name eq a)").position, 22);
    assert_eq!(err("name eq a AND status eq DONE").position, 10);
    assert_eq!(err("name eq a OR status eq DONE").position, 10);
    assert_eq!(err("NOT name eq a").position, 9);
    assert_eq!(err("-name eq a").position, 6);
    assert_eq!(err("(name eq a) -(zone eq b)").position, 12);
}

#[test]
fn unknown_field() {
    let e = err("colour = red");
    assert_eq!(e.position, 0);
    assert!(e.message.contains("'colour'"), "{e}");
    for field in Field::ALL {
        assert!(e.message.contains(field.wire_name()), "{e}");
    }
    assert_eq!(err("name = a error.code = 3").position, 9);
    assert_eq!(err("Status = DONE").position, 0);
    assert_eq!(err("nämé = x").position, 0);
}

#[test]
fn bad_operators() {
    let e = err("status == DONE");
    assert_eq!(e.position, 7);
    assert!(e.message.contains("'=='"), "{e}");
    assert_eq!(err("status ~ x").position, 7);
    assert_eq!(err("status =~ x").position, 7);
    assert_eq!(err("status DONE").position, 7);
    assert_eq!(err("status").position, 6);
    assert_eq!(err("status & x").position, 7);
    assert_eq!(err("= DONE").position, 0);
}

#[test]
fn bad_values() {
    let e = err("progress = abc");
    assert_eq!(e.position, 11);
    assert!(e.message.contains("integer"), "{e}");
    assert_eq!(err("id = 99999999999999999999").position, 5);
    assert_eq!(err("id = 1.5").position, 5);
    let e = err("insertTime > yesterday");
    assert_eq!(e.position, 13);
    assert!(e.message.contains("RFC 3339"), "{e}");
    assert_eq!(err("insertTime > '2026-01-01'").position, 13);
    let e = err("status = done");
    assert_eq!(e.position, 9);
    assert!(e.message.contains("PENDING"), "{e}");
    assert_eq!(err("status : 'FAILED'").position, 9);
    assert!(parse("status:*").is_ok());
    assert_eq!(err("name =").position, 6);
    assert_eq!(err("name = )").position, 7);
}

#[test]
fn unterminated_quote() {
    let e = err(r#"name = "abc"#);
    assert_eq!(e.position, 7);
    assert!(e.message.contains("unterminated"), "{e}");
    assert_eq!(err(r"name = 'abc\'").position, 7);
    assert_eq!(err(r"zone:* name = 'ab").position, 14);
}

#[test]
fn unbalanced_parentheses() {
    let e = err("(name = a");
    assert_eq!(e.position, 0);
    assert!(e.message.contains("never closed"), "{e}");
    assert_eq!(err("zone:* ((name = a) ").position, 7);
    let e = err("name = a)");
    assert_eq!(e.position, 8);
    assert!(e.message.contains("unmatched"), "{e}");
    assert_eq!(err("(name = a))").position, 10);
    assert_eq!(err("()").position, 1);
    assert_eq!(err(")").position, 0);
}

#[test]
fn keywords_out_of_place() {
    assert_eq!(err("AND name = a").position, 0);
    assert_eq!(err("name = a AND").position, 12);
    assert_eq!(err("name = a OR OR name = b").position, 12);
    assert_eq!(err("name = a AND OR name = b").position, 13);
    assert_eq!(err("NOT").position, 3);
    // Lower-case words are not keywords, so `and` is an unknown field.
    assert_eq!(err("name = a and zone:*").position, 9);
}

#[test]
fn trailing_garbage() {
    let e = err(r#"name = "a"b"#);
    assert_eq!(e.position, 10);
    assert_eq!(err("name = 'a'(zone:*)").position, 10);
    assert_eq!(err("name = a ) zone:*").position, 9);
}

#[test]
fn length_limit() {
    let long = format!("name = \"{}\"", "x".repeat(MAX_FILTER_LEN - 9));
    assert_eq!(long.len(), MAX_FILTER_LEN);
    assert!(parse(&long).is_ok());
    let e = err(&format!("{long} "));
    assert_eq!(e.position, MAX_FILTER_LEN);
    // Byte 4096 falls inside a two-byte character.
    let e = err(&format!("name = {}", "é".repeat(MAX_FILTER_LEN / 2)));
    assert_eq!(e.position, MAX_FILTER_LEN - 1);
}

#[test]
fn depth_limit() {
    let nest = |n: usize| format!("{}zone:*{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(p(&nest(MAX_DEPTH)), Filter::Present(Field::Zone));
    let e = err(&nest(MAX_DEPTH + 1));
    assert_eq!(e.position, MAX_DEPTH);
    assert!(e.message.contains("nested"), "{e}");
    // Far deeper input is refused the same way rather than overflowing the stack.
    assert_eq!(err(&"(".repeat(4000)).position, MAX_DEPTH);
    assert_eq!(err(&"-(".repeat(2000)).position, 2 * MAX_DEPTH + 1);
}

#[test]
fn error_display() {
    assert_eq!(
        err("zone").to_string(),
        "invalid filter at position 4: expected an operator (= != < <= > >= : eq ne) after 'zone'"
    );
}

#[test]
fn display_examples() {
    for (input, shown) in [
        ("name:x", "name = \"x\""),
        ("NOT (a.b = 1)", ""),
        ("- - zone:*", ""),
        ("-(-zone:*)", "NOT (NOT zone:*)"),
        (
            "name eq 'a\"b' status ne DONE",
            "(name eq \"a\\\"b\") (status ne \"DONE\")",
        ),
        (
            "insertTime < 2026-01-01T00:00:00.5+02:00",
            "insertTime < 2026-01-01T00:00:00.5+02:00",
        ),
        ("a = 1 OR (b:* c:*)", ""),
    ] {
        match parse(input) {
            Ok(Some(f)) => assert_eq!(f.to_string(), shown, "{input}"),
            _ => assert!(shown.is_empty(), "{input} did not parse"),
        }
    }
}

mod properties;
