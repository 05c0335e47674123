//! Recursive-descent parser for both filter syntaxes. winnow supplies the lexemes; the grammar
//! is plain methods so that nesting depth and the syntax in use can be tracked, and so that
//! every error names the byte offset of the token that caused it.

use std::borrow::Cow;

use regex::RegexBuilder;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use winnow::Parser as _;
use winnow::combinator::{not, terminated};
use winnow::token::{any, one_of, take_till, take_while};

use super::ast::{CompareOp, Field, Filter, Value, ValueType};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 32;
/// Most regular expressions in one filter.
pub const MAX_PATTERNS: usize = 16;
/// Cap on one compiled pattern. Compiling up to it takes a few milliseconds, so with
/// [`MAX_PATTERNS`] this bounds the CPU one filter can cost; a short hostile pattern such as
/// `\w{1000}{1000}` fails fast instead of using the regex crate's much larger default budget.
const REGEX_SIZE_LIMIT: usize = 256 << 10;
/// The only values `status` takes; comparing it with anything else is surely a typo.
const STATUSES: [&str; 3] = ["PENDING", "RUNNING", "DONE"];

/// A filter that could not be parsed, with the byte offset (a char boundary) where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at position {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

fn error(position: usize, message: impl Into<String>) -> FilterError {
    FilterError {
        position,
        message: message.into(),
    }
}

type Result<T> = std::result::Result<T, FilterError>;
/// Lexemes only report that they did not match; the grammar decides what that means.
type Lex<T> = winnow::Result<T, ()>;

/// Parses a `filter` parameter. Empty or all-whitespace input means "no filter".
pub fn parse(input: &str) -> Result<Option<Filter>> {
    if input.len() > MAX_FILTER_LEN {
        // The limit can fall inside a multi-byte character; report the boundary before it.
        let position = (0..=MAX_FILTER_LEN)
            .rev()
            .find(|&i| input.is_char_boundary(i))
            .unwrap_or(0);
        return Err(error(
            position,
            format!("filter is longer than {MAX_FILTER_LEN} bytes"),
        ));
    }
    let mut parser = Parser {
        input,
        rest: input,
        depth: 0,
        patterns: 0,
        syntax: None,
    };
    parser.skip_ws();
    if parser.rest.is_empty() {
        return Ok(None);
    }
    let filter = parser.expression()?;
    parser.skip_ws();
    // A sequence only stops at the end, at AND (which `expression` consumes) or at ')'.
    if !parser.rest.is_empty() {
        return Err(error(parser.pos(), "unmatched ')'"));
    }
    Ok(Some(filter))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// Comparison operators, AND/OR/NOT and `-`.
    Aip,
    /// `eq` / `ne` with a regular expression.
    Regex,
}

struct Parser<'a> {
    input: &'a str,
    /// The unparsed suffix of `input`, so positions are always char boundaries.
    rest: &'a str,
    depth: usize,
    patterns: usize,
    /// The syntax fixed by the first construct that belongs to only one of them.
    syntax: Option<Syntax>,
}

impl<'a> Parser<'a> {
    fn pos(&self) -> usize {
        self.input.len() - self.rest.len()
    }

    /// Runs a lexeme, consuming input only if it matches.
    fn lex<O>(&mut self, mut lexeme: impl winnow::Parser<&'a str, O, ()>) -> Option<O> {
        let mut probe = self.rest;
        let out = lexeme.parse_next(&mut probe).ok()?;
        self.rest = probe;
        Some(out)
    }

    fn skip_ws(&mut self) {
        self.lex(take_while(0.., char::is_whitespace));
    }

    fn eat(&mut self, c: char) -> bool {
        self.lex(c).is_some()
    }

    /// Consumes the keyword (after any whitespace) and returns where it started.
    fn keyword(&mut self, kw: &'static str) -> Option<usize> {
        self.skip_ws();
        let at = self.pos();
        self.lex(keyword(kw)).map(|_| at)
    }

    fn at_keyword(&self, kw: &'static str) -> bool {
        keyword(kw).parse_next(&mut { self.rest }).is_ok()
    }

    fn commit(&mut self, syntax: Syntax, at: usize) -> Result<()> {
        match self.syntax {
            Some(fixed) if fixed != syntax => Err(error(
                at,
                "the regular-expression form (eq, ne) cannot be mixed with comparison \
                 operators, AND, OR, NOT or '-'",
            )),
            _ => {
                self.syntax = Some(syntax);
                Ok(())
            }
        }
    }

    /// expression = sequence { "AND" sequence }
    fn expression(&mut self) -> Result<Filter> {
        let mut items = vec![self.sequence()?];
        while let Some(at) = self.keyword("AND") {
            self.commit(Syntax::Aip, at)?;
            items.push(self.sequence()?);
        }
        Ok(group(items, Filter::And))
    }

    /// sequence = factor { factor }, juxtaposition meaning AND.
    fn sequence(&mut self) -> Result<Filter> {
        let mut items = vec![self.factor()?];
        loop {
            self.skip_ws();
            if self.rest.is_empty() || self.rest.starts_with(')') || self.at_keyword("AND") {
                return Ok(group(items, Filter::And));
            }
            items.push(self.factor()?);
        }
    }

    /// factor = term { "OR" term }
    fn factor(&mut self) -> Result<Filter> {
        let mut items = vec![self.term()?];
        while let Some(at) = self.keyword("OR") {
            self.commit(Syntax::Aip, at)?;
            items.push(self.term()?);
        }
        Ok(group(items, Filter::Or))
    }

    /// term = [ "NOT" | "-" ] simple
    fn term(&mut self) -> Result<Filter> {
        self.skip_ws();
        let at = self.pos();
        if self.keyword("NOT").is_some() || self.eat('-') {
            self.commit(Syntax::Aip, at)?;
            return Ok(Filter::Not(Box::new(self.simple()?)));
        }
        self.simple()
    }

    /// simple = "(" expression ")" | restriction
    fn simple(&mut self) -> Result<Filter> {
        self.skip_ws();
        let open = self.pos();
        if !self.eat('(') {
            return self.restriction();
        }
        // The only recursion in the grammar, so bounding it bounds the stack.
        if self.depth == MAX_DEPTH {
            return Err(error(
                open,
                format!("parentheses are nested more than {MAX_DEPTH} deep"),
            ));
        }
        self.depth += 1;
        let inner = self.expression()?;
        self.depth -= 1;
        self.skip_ws();
        if !self.eat(')') {
            return Err(error(open, "'(' is never closed"));
        }
        Ok(inner)
    }

    /// restriction = field comparator value | field ("eq" | "ne") value
    fn restriction(&mut self) -> Result<Filter> {
        let start = self.pos();
        let Some(name) = self.lex(identifier) else {
            return Err(error(start, "expected a field name, '(', NOT or '-'"));
        };
        if matches!(name, "AND" | "OR" | "NOT") {
            return Err(error(start, format!("expected a field name, not {name}")));
        }
        let Some(field) = Field::from_wire(name) else {
            let known = Field::ALL.map(Field::wire_name).join(", ");
            return Err(error(
                start,
                format!("unknown field '{name}'; known fields are {known}"),
            ));
        };
        self.skip_ws();
        let op_at = self.pos();
        if let Some(symbol) = self.lex(take_while(1.., ['=', '!', '<', '>', ':', '~'])) {
            return self.comparison(field, symbol, op_at);
        }
        for (word, negated) in [("eq", false), ("ne", true)] {
            if self.lex(keyword(word)).is_some() {
                self.commit(Syntax::Regex, op_at)?;
                return self.regex(field, word, negated, op_at);
            }
        }
        Err(error(
            op_at,
            format!("expected an operator (= != < <= > >= : eq ne) after '{name}'"),
        ))
    }

    fn comparison(&mut self, field: Field, symbol: &str, op_at: usize) -> Result<Filter> {
        let op = match symbol {
            "=" | ":" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            _ => {
                return Err(error(
                    op_at,
                    format!("unknown operator '{symbol}'; expected = != < <= > >= or :"),
                ));
            }
        };
        self.commit(Syntax::Aip, op_at)?;
        let (text, quoted, at) = self.value(symbol)?;
        if symbol == ":" && !quoted && text == "*" {
            return Ok(Filter::Present(field));
        }
        let value = convert(field, &text, at)?;
        Ok(Filter::Compare { field, op, value })
    }

    fn regex(&mut self, field: Field, word: &str, negated: bool, op_at: usize) -> Result<Filter> {
        if field.value_type() == ValueType::Timestamp {
            return Err(error(
                op_at,
                format!(
                    "'{word}' cannot be used on timestamp field '{field}'; compare it with < or >"
                ),
            ));
        }
        let (pattern, _, at) = self.value(word)?;
        self.patterns += 1;
        if self.patterns > MAX_PATTERNS {
            return Err(error(
                at,
                format!("a filter can hold at most {MAX_PATTERNS} regular expressions"),
            ));
        }
        let invalid = |e: regex::Error| {
            error(
                at,
                format!("invalid regular expression: {}", regex_message(&e)),
            )
        };
        // Check the bare pattern's syntax on its own first: that rejects ones like `a)|(b` that
        // would escape the anchoring group and so no longer need to match the whole value. A
        // zero size limit stops the compile right after parsing, so the check costs little.
        match RegexBuilder::new(&pattern).size_limit(0).build() {
            Ok(_) | Err(regex::Error::CompiledTooBig(_)) => {}
            Err(e) => return Err(invalid(e)),
        }
        let pattern = RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(invalid)?;
        Ok(Filter::Regex {
            field,
            pattern,
            negated,
        })
    }

    /// value = quoted | bare. Returns the text, whether it was quoted, and where it started.
    fn value(&mut self, after: &str) -> Result<(Cow<'a, str>, bool, usize)> {
        self.skip_ws();
        let at = self.pos();
        if self.rest.starts_with(['"', '\'']) {
            let text = self
                .lex(quoted)
                .ok_or_else(|| error(at, "unterminated string"))?;
            if !self.rest.is_empty() && !self.rest.starts_with(ends_bare) {
                return Err(error(
                    self.pos(),
                    "expected whitespace or ')' after a quoted value",
                ));
            }
            return Ok((Cow::Owned(text), true, at));
        }
        match self.lex(take_till(1.., ends_bare)) {
            Some(text) => Ok((Cow::Borrowed(text), false, at)),
            None => Err(error(at, format!("expected a value after '{after}'"))),
        }
    }
}

/// One operand alone stands for itself; several are combined with `make`.
fn group(items: Vec<Filter>, make: fn(Vec<Filter>) -> Filter) -> Filter {
    match <[Filter; 1]>::try_from(items) {
        Ok([only]) => only,
        Err(items) => make(items),
    }
}

/// Reads a comparison value according to the field's type.
fn convert(field: Field, text: &str, at: usize) -> Result<Value> {
    match field.value_type() {
        ValueType::String if field == Field::Status && !STATUSES.contains(&text) => Err(error(
            at,
            format!("status is PENDING, RUNNING or DONE, not '{text}'"),
        )),
        ValueType::String => Ok(Value::String(text.to_owned())),
        ValueType::Integer => text
            .parse()
            .map(Value::Integer)
            .map_err(|_| error(at, format!("'{field}' takes an integer, not '{text}'"))),
        ValueType::Timestamp => OffsetDateTime::parse(text, &Rfc3339)
            .map(Value::Timestamp)
            .map_err(|_| {
                error(
                    at,
                    format!(
                        "'{field}' takes an RFC 3339 timestamp such as 2026-01-01T00:00:00Z, \
                         not '{text}'"
                    ),
                )
            }),
    }
}

/// The regex crate's syntax errors repeat the pattern with a caret over several lines; the
/// position already points at the pattern, so keep only the last line's description.
fn regex_message(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .last()
            .unwrap_or(text)
            .trim_start_matches("error: ")
            .to_owned(),
        regex::Error::CompiledTooBig(_) => "pattern is too large".to_owned(),
        other => other.to_string(),
    }
}

fn ends_bare(c: char) -> bool {
    c.is_whitespace() || c == ')'
}

/// A field name or keyword. Any alphanumeric character is accepted so that a misspelt field is
/// reported whole.
fn identifier<'i>(input: &mut &'i str) -> Lex<&'i str> {
    (
        one_of(|c: char| c.is_alphabetic() || c == '_'),
        take_while(0.., |c: char| c.is_alphanumeric() || c == '_' || c == '.'),
    )
        .take()
        .parse_next(input)
}

/// `kw` as a whole word: `NOTE` does not start with the keyword `NOT`.
fn keyword<'i>(kw: &'static str) -> impl winnow::Parser<&'i str, &'i str, ()> {
    terminated(
        kw,
        not(one_of(|c: char| {
            c.is_alphanumeric() || c == '_' || c == '.'
        })),
    )
}

/// A single- or double-quoted string. `\"`, `\'` and `\\` stand for the escaped character;
/// any other backslash is kept, so regular-expression escapes like `\.` survive quoting.
fn quoted(input: &mut &str) -> Lex<String> {
    let quote = one_of(['"', '\'']).parse_next(input)?;
    let mut text = String::new();
    loop {
        match any.parse_next(input)? {
            c if c == quote => return Ok(text),
            '\\' => match any.parse_next(input)? {
                c @ ('"' | '\'' | '\\') => text.push(c),
                c => {
                    text.push('\\');
                    text.push(c);
                }
            },
            c => text.push(c),
        }
    }
}
