//! Properties over generated input: the parser never panics, and what it accepts prints
//! back to text that parses to the same filter.

use proptest::prelude::*;

use super::*;

fn check_position(input: &str) {
    if let Err(e) = parse(input) {
        assert!(e.position <= input.len(), "{input:?}: {e}");
        assert!(input.is_char_boundary(e.position), "{input:?}: {e}");
    }
}

/// Pieces that steer the parser into its interesting paths: mostly restrictions, some of them
/// ill-typed, with keywords, parentheses and noise from the filter alphabet between them.
fn token() -> impl Strategy<Value = String> {
    let field = prop::sample::select(Field::ALL.map(Field::wire_name).to_vec());
    let op = prop::sample::select(vec![
        "=", "!=", "<", "<=", ">", ">=", ":", " eq ", " ne ", "==", "~", " ",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "DONE",
            "x",
            "'a b'",
            r#""q\"""#,
            "5",
            "-7",
            "2026-01-01T00:00:00Z",
            "*",
            "'.*'",
            "é",
            "'(x'",
            "AND",
            "",
        ])
        .prop_map(String::from),
        "[a-zA-Z0-9=!<>:*'\"\\\\.-]{1,4}",
    ];
    prop_oneof![
        6 => (field, op, value).prop_map(|(f, o, v)| format!("{f}{o}{v}")),
        2 => prop::sample::select(vec!["AND", "OR", "NOT", "-", "(", ")"]).prop_map(String::from),
        1 => "[a-zA-Z0-9 ()=!<>:*'\"\\\\.-]{1,6}",
        1 => prop::sample::select(vec!["eq", "ne", "'", "\"", "\\", "\u{3000}", "é"])
            .prop_map(String::from),
    ]
}

fn grammarish() -> impl Strategy<Value = String> {
    prop::collection::vec((token(), prop::sample::select(vec!["", " "])), 0..16)
        .prop_map(|parts| parts.into_iter().map(|(token, sep)| token + sep).collect())
}

/// Restriction text in the many spellings the parser accepts, always well formed.
fn restriction_text() -> impl Strategy<Value = String> {
    let space = || prop::sample::select(vec!["", " ", "  "]);
    let field = prop::sample::select(Field::ALL.to_vec());
    let op = prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">=", ":"]);
    (field, op, space(), space()).prop_flat_map(|(field, op, s1, s2)| {
        let value: BoxedStrategy<String> = match field.value_type() {
            ValueType::Integer => "-?[0-9]{1,5}|'-?[0-9]{1,3}'".boxed(),
            ValueType::Timestamp => prop::sample::select(vec![
                "2026-01-01T00:00:00Z",
                "'1999-12-31T23:59:59.123+05:30'",
                "\"2026-06-01T12:00:00-07:00\"",
            ])
            .prop_map(String::from)
            .boxed(),
            ValueType::String if field == Field::Status => {
                prop::sample::select(vec!["PENDING", "'RUNNING'", "\"DONE\""])
                    .prop_map(String::from)
                    .boxed()
            }
            ValueType::String => prop_oneof![
                "[a-zA-Z0-9_.][a-zA-Z0-9_.:(-]{0,7}",
                "'([^'\\\\]|\\\\'|\\\\\\\\){0,6}'",
                "\"([^\"\\\\]|\\\\.){0,6}\"",
            ]
            .boxed(),
        };
        prop_oneof![
            1 => Just(format!("{field}{s1}:{s2}*")),
            6 => value.prop_map(move |v| format!("{field}{s1}{op}{s2}{v}")),
        ]
    })
}

/// Well-formed comparison-syntax text, paired with whether it is a single operand (so that
/// NOT and `-` may precede it).
fn comparison_text() -> impl Strategy<Value = String> {
    let leaf = restriction_text().prop_map(|s| (s, true));
    leaf.prop_recursive(4, 24, 2, |inner| {
        let pair = (
            inner.clone(),
            inner.clone(),
            prop::sample::select(vec![" AND ", " OR ", " ", "  AND\t"]),
        );
        prop_oneof![
            pair.prop_map(|((a, _), (b, _), sep)| (format!("{a}{sep}{b}"), false)),
            inner.clone().prop_map(|(a, _)| (format!("( {a})"), true)),
            (inner, prop::sample::select(vec!["NOT ", "-", "- "])).prop_map(
                |((a, simple), not)| {
                    let a = if simple { a } else { format!("({a})") };
                    (format!("{not}{a}"), false)
                }
            ),
        ]
    })
    .prop_map(|(s, _)| s)
}

fn field_value(field: Field) -> BoxedStrategy<Value> {
    match field.value_type() {
        ValueType::Integer => any::<i64>().prop_map(Value::Integer).boxed(),
        ValueType::Timestamp => (0..253_402_300_800_i64, 0..1_000_000_000_u32)
            .prop_map(|(secs, nanos)| {
                let t = OffsetDateTime::from_unix_timestamp(secs).unwrap();
                Value::Timestamp(t.replace_nanosecond(nanos).unwrap())
            })
            .boxed(),
        ValueType::String if field == Field::Status => {
            prop::sample::select(vec!["PENDING", "RUNNING", "DONE"])
                .prop_map(|s| Value::String(s.to_owned()))
                .boxed()
        }
        ValueType::String => any::<String>().prop_map(Value::String).boxed(),
    }
}

fn restriction() -> impl Strategy<Value = Filter> {
    let op = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ]);
    prop::sample::select(Field::ALL.to_vec()).prop_flat_map(move |field| {
        prop_oneof![
            1 => Just(Filter::Present(field)),
            4 => (op.clone(), field_value(field))
                .prop_map(move |(op, value)| Filter::Compare { field, op, value }),
        ]
    })
}

fn comparison_filter() -> impl Strategy<Value = Filter> {
    restriction().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_input_never_panics(input in any::<String>()) {
        check_position(&input);
    }

    #[test]
    fn grammarish_input_never_panics(input in grammarish()) {
        check_position(&input);
        // Whatever parses shows as a filter that parses back the same.
        if let Ok(Some(f)) = parse(&input) {
            prop_assert_eq!(parse(&f.to_string()), Ok(Some(f)));
        }
    }

    #[test]
    fn well_formed_text_parses_and_round_trips(input in comparison_text()) {
        let parsed = parse(&input);
        prop_assert!(matches!(parsed, Ok(Some(_))), "{:?}: {:?}", input, parsed);
        if let Ok(Some(f)) = parsed {
            prop_assert_eq!(parse(&f.to_string()), Ok(Some(f)));
        }
    }

    #[test]
    fn comparison_filters_round_trip(f in comparison_filter()) {
        prop_assert_eq!(parse(&f.to_string()), Ok(Some(f)));
    }

    #[test]
    fn regex_filters_round_trip(
        terms in prop::collection::vec(
            (
                prop::sample::select(vec![Field::Name, Field::Status, Field::Id, Field::Zone]),
                "[a-z\"'\\\\.*|()?+ é-]{0,10}",
                any::<bool>(),
            ),
            1..4,
        )
    ) {
        let terms: Vec<String> = terms
            .into_iter()
            .map(|(field, pattern, negated)| {
                let escaped = pattern.replace('\\', "\\\\").replace('\'', "\\'");
                format!("({field} {} '{escaped}')", if negated { "ne" } else { "eq" })
            })
            .collect();
        let input = terms.join(" ");
        // Many generated patterns are invalid; those must fail at a sensible position.
        check_position(&input);
        if let Ok(Some(f)) = parse(&input) {
            prop_assert_eq!(parse(&f.to_string()), Ok(Some(f)));
        }
    }
}
