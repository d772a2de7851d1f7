//! The subset of the `query_string` and `simple_query_string` syntaxes that can be translated
//! exactly: terms and quoted phrases, field qualifiers (`query_string` only), `_exists_:field`
//! (`query_string` only), parentheses (`query_string` only) and explicit AND / OR between them.
//! Anything else is a [`SyntaxError`] naming the construct, so the caller flags the clause
//! instead of guessing what Lucene would make of it.
//!
//! Why so strict:
//! - Elasticsearch parses `query_string` with whitespace *not* being an operator: `John Smith`
//!   is one chunk given to the analyser, which on a keyword field is the single term
//!   `John Smith`, on a text field two tokens joined by `default_operator`. Implicit
//!   juxtaposition is therefore refused in `query_string` (write `AND`/`OR`, or quote it).
//! - Lucene's classic parser does not give AND/OR boolean precedence (`a OR b AND c` is not
//!   `a OR (b AND c)`), so a group may use one operator only.
//! - Wildcards, fuzziness, proximity, boosts, ranges, regular expressions, `+`/`-`/`NOT` change
//!   what a leaf matches in ways that are not one keyword term per leaf.

use std::fmt;

/// One parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A term or phrase, optionally field-qualified.
    Leaf {
        /// The field qualifier (escapes removed), if any.
        field: Option<String>,
        /// The text (escapes removed; a phrase without its quotes).
        text: String,
        /// The leaf as written, qualifier included: re-rendered as is for non-tag fields.
        raw: String,
    },
    /// `_exists_:field`.
    Exists {
        /// The field (escapes removed).
        field: String,
    },
    /// Every child must match.
    All(Vec<Node>),
    /// At least one child must match.
    Any(Vec<Node>),
}

/// Why a query text is outside the translatable subset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError(msg.into()))
}

/// The two syntaxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `query_string` (Lucene classic syntax, as Elasticsearch extends it).
    QueryString,
    /// `simple_query_string`.
    Simple,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    /// A term (escapes removed), whether a `:` follows it directly, and its raw text.
    Term {
        text: String,
        raw: String,
        colon: bool,
    },
    Phrase {
        text: String,
        raw: String,
    },
}

/// Characters that make a `query_string` term something other than one literal term.
const QS_SPECIAL: &[char] = &['+', '-', '!', '(', ')', ':', '^', '[', ']', '"', '{', '}', '~', '*', '?', '/', '=', '<', '>', '&', '|'];
/// The same for `simple_query_string`.
const SIMPLE_SPECIAL: &[char] = &['+', '|', '-', '"', '*', '(', ')', '~'];

fn describe(c: char) -> &'static str {
    match c {
        '*' | '?' => "a wildcard",
        '~' => "fuzziness or proximity (`~`)",
        '^' => "a boost (`^`)",
        '[' | ']' | '{' | '}' | '<' | '>' | '=' => "a range",
        '/' => "a regular expression",
        '+' | '-' | '!' => "a `+`/`-`/`!` modifier (required/prohibited clauses)",
        '&' | '|' => "an `&`/`|` inside a term",
        '(' | ')' => "parentheses",
        _ => "a reserved character",
    }
}

/// Splits `text` into tokens of `dialect`.
fn lex(text: &str, dialect: Dialect) -> Result<Vec<Tok>, SyntaxError> {
    let special = match dialect {
        Dialect::QueryString => QS_SPECIAL,
        Dialect::Simple => SIMPLE_SPECIAL,
    };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |(at, _)| *at);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match (dialect, c) {
            (Dialect::QueryString, '(') => {
                out.push(Tok::Open);
                i += 1;
                continue;
            }
            (Dialect::QueryString, ')') => {
                out.push(Tok::Close);
                i += 1;
                continue;
            }
            (Dialect::QueryString, '&') | (Dialect::QueryString, '|') if chars.get(i + 1).map(|p| p.1) == Some(c) && is_boundary(&chars, i + 2) => {
                out.push(if c == '&' { Tok::And } else { Tok::Or });
                i += 2;
                continue;
            }
            (Dialect::Simple, '+') => {
                out.push(Tok::And);
                i += 1;
                continue;
            }
            (Dialect::Simple, '|') => {
                out.push(Tok::Or);
                i += 1;
                continue;
            }
            (_, '"') => {
                let mut j = i + 1;
                let mut body = String::new();
                loop {
                    match chars.get(j) {
                        None => return err("an unterminated quoted phrase"),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => {
                            let Some((_, e)) = chars.get(j + 1) else { return err("a dangling `\\` escape") };
                            if *e == 'u' && dialect == Dialect::QueryString {
                                return err("a `\\u` unicode escape");
                            }
                            body.push(*e);
                            j += 2;
                        }
                        Some((_, ch)) => {
                            body.push(*ch);
                            j += 1;
                        }
                    }
                }
                j += 1;
                if let Some((_, next)) = chars.get(j) {
                    if !next.is_whitespace() && !matches!(next, ')' | '|' | '+') {
                        return err(format!("{} after a phrase", describe(*next)));
                    }
                }
                out.push(Tok::Phrase { text: body, raw: text[at..end_of(j)].to_string() });
                i = j;
                continue;
            }
            _ => {}
        }
        // A term: up to whitespace, a closing parenthesis, or (query_string) a `:`.
        let mut j = i;
        let mut body = String::new();
        let mut colon = false;
        while let Some((_, ch)) = chars.get(j) {
            let ch = *ch;
            if ch.is_whitespace() {
                break;
            }
            if ch == '\\' {
                let Some((_, e)) = chars.get(j + 1) else { return err("a dangling `\\` escape") };
                if *e == 'u' && dialect == Dialect::QueryString {
                    return err("a `\\u` unicode escape");
                }
                body.push(*e);
                j += 2;
                continue;
            }
            if dialect == Dialect::QueryString && ch == ':' {
                colon = true;
                break;
            }
            if dialect == Dialect::QueryString && ch == ')' {
                break;
            }
            if dialect == Dialect::Simple && (ch == '|' || ch == '+') {
                break;
            }
            if special.contains(&ch) {
                // (A field pattern is written escaped, `actions.tags.\*:v`, as Lucene requires.)
                return err(format!("{} (`{ch}`)", describe(ch)));
            }
            body.push(ch);
            j += 1;
        }
        let raw = text[at..end_of(j)].to_string();
        if dialect == Dialect::QueryString && !colon && (raw == "AND" || raw == "OR") {
            out.push(if raw == "AND" { Tok::And } else { Tok::Or });
        } else if dialect == Dialect::QueryString && !colon && raw == "NOT" {
            return err("`NOT`");
        } else {
            out.push(Tok::Term { text: body, raw, colon });
        }
        i = if colon { j + 1 } else { j };
    }
    Ok(out)
}

fn is_boundary(chars: &[(usize, char)], i: usize) -> bool {
    chars.get(i).is_none_or(|(_, c)| c.is_whitespace() || *c == '(')
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Join {
    Implicit,
    And,
    Or,
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    dialect: Dialect,
    text: &'a str,
    /// What implicit juxtaposition means (simple_query_string's `default_operator`).
    implicit_and: bool,
}

impl Parser<'_> {
    fn expr(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let mut items = vec![self.clause(depth)?];
        let mut join: Option<Join> = None;
        while let Some(tok) = self.toks.get(self.pos) {
            let this = match tok {
                Tok::Close => break,
                Tok::And => {
                    self.pos += 1;
                    Join::And
                }
                Tok::Or => {
                    self.pos += 1;
                    Join::Or
                }
                _ => Join::Implicit,
            };
            if this == Join::Implicit && self.dialect == Dialect::QueryString {
                return err(format!(
                    "terms joined by whitespace in `{}`: Elasticsearch analyses them as one chunk (whitespace is not an operator); join them with AND/OR or quote them",
                    self.text
                ));
            }
            match join {
                None => join = Some(this),
                Some(j) if j != this => {
                    return err("a group mixing different operators (Lucene does not give AND/OR boolean precedence); use parentheses around each group");
                }
                _ => {}
            }
            if self.toks.get(self.pos).is_none_or(|t| matches!(t, Tok::Close | Tok::And | Tok::Or)) {
                return err("an operator without a right-hand side");
            }
            items.push(self.clause(depth)?);
        }
        if items.len() == 1 {
            return Ok(items.pop().expect("one"));
        }
        let and = match join.expect("a join between two items") {
            Join::And => true,
            Join::Or => false,
            Join::Implicit => self.implicit_and,
        };
        Ok(if and { Node::All(items) } else { Node::Any(items) })
    }

    fn clause(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let Some(tok) = self.toks.get(self.pos).cloned() else { return err("an empty clause") };
        self.pos += 1;
        match tok {
            Tok::Open => {
                if depth > 32 {
                    return err("parentheses nested deeper than 32");
                }
                let inner = self.expr(depth + 1)?;
                match self.toks.get(self.pos) {
                    Some(Tok::Close) => self.pos += 1,
                    _ => return err("an unbalanced `(`"),
                }
                Ok(inner)
            }
            Tok::Close => err("an unbalanced `)`"),
            Tok::And | Tok::Or => err("an operator without a left-hand side"),
            Tok::Phrase { text, raw } => Ok(Node::Leaf { field: None, text, raw }),
            Tok::Term { text, raw, colon: false } => Ok(Node::Leaf { field: None, text, raw }),
            Tok::Term { text: field, raw: field_raw, colon: true } => {
                if field.is_empty() {
                    return err("an empty field name");
                }
                let value = self.toks.get(self.pos).cloned();
                self.pos += 1;
                match value {
                    Some(Tok::Term { text, raw, colon: false }) if field == "_exists_" => {
                        let _ = raw;
                        Ok(Node::Exists { field: text })
                    }
                    Some(Tok::Term { text, raw, colon: false }) => Ok(Node::Leaf { field: Some(field), text, raw: format!("{field_raw}:{raw}") }),
                    Some(Tok::Phrase { text, raw }) if field != "_exists_" => Ok(Node::Leaf { field: Some(field), text, raw: format!("{field_raw}:{raw}") }),
                    Some(Tok::Open) => err("a field-qualified group `field:(..)`"),
                    _ => err(format!("field `{field}` without a term")),
                }
            }
        }
    }
}

/// Parses `text` in `dialect`; `implicit_and` is what whitespace means in
/// `simple_query_string` (its `default_operator`; `query_string` refuses implicit joins).
pub fn parse(text: &str, dialect: Dialect, implicit_and: bool) -> Result<Node, SyntaxError> {
    let toks = lex(text, dialect)?;
    if toks.is_empty() {
        return err("an empty query text");
    }
    let mut p = Parser { toks, pos: 0, dialect, text, implicit_and };
    let node = p.expr(0)?;
    if p.pos != p.toks.len() {
        return err("an unbalanced `)`");
    }
    Ok(node)
}

/// The field qualifiers of a `query_string` text, found by a lenient scan (escapes removed):
/// used to decide whether a text outside the subset touches the tag map at all.
pub fn qualifiers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    let mut in_phrase = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(e) = chars.next() {
                    cur.push(e);
                }
            }
            '"' => {
                in_phrase = !in_phrase;
                cur.clear();
            }
            _ if in_phrase => {}
            ':' => {
                let field = cur.trim_start_matches(['(', '+', '-', '!']).to_string();
                if !field.is_empty() {
                    out.push(field);
                }
                cur.clear();
            }
            c if c.is_whitespace() || matches!(c, '(' | ')') => cur.clear(),
            c => cur.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(field: Option<&str>, text: &str, raw: &str) -> Node {
        Node::Leaf { field: field.map(str::to_string), text: text.into(), raw: raw.into() }
    }

    #[test]
    fn parses_terms_phrases_fields_and_groups() {
        assert_eq!(parse("John", Dialect::QueryString, false), Ok(leaf(None, "John", "John")));
        assert_eq!(parse(r#""John Smith""#, Dialect::QueryString, false), Ok(leaf(None, "John Smith", r#""John Smith""#)));
        assert_eq!(
            parse(r"actions.tags.scope\:team:x\:y", Dialect::QueryString, false),
            Ok(leaf(Some("actions.tags.scope:team"), "x:y", r"actions.tags.scope\:team:x\:y"))
        );
        assert_eq!(
            parse("a:1 AND (b:2 OR c:\"x y\") && _exists_:d", Dialect::QueryString, false),
            Ok(Node::All(vec![
                leaf(Some("a"), "1", "a:1"),
                Node::Any(vec![leaf(Some("b"), "2", "b:2"), leaf(Some("c"), "x y", "c:\"x y\"")]),
                Node::Exists { field: "d".into() },
            ]))
        );
        assert_eq!(parse("a || b", Dialect::QueryString, false), Ok(Node::Any(vec![leaf(None, "a", "a"), leaf(None, "b", "b")])));
        assert_eq!(parse("a-b", Dialect::QueryString, false).map(|_| ()), err("a `+`/`-`/`!` modifier (required/prohibited clauses) (`-`)"));
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        for (text, why) in [
            ("a b", "whitespace"),
            ("a AND b OR c", "mixing"),
            ("jo*", "wildcard"),
            ("jo?n", "wildcard"),
            ("john~", "fuzziness"),
            ("\"a b\"~2", "fuzziness"),
            ("john^2", "boost"),
            ("n:[1 TO 5]", "range"),
            ("n:>5", "range"),
            ("/jo.n/", "regular expression"),
            ("-a", "modifier"),
            ("+a", "modifier"),
            ("NOT a", "NOT"),
            ("f:(a OR b)", "field-qualified group"),
            ("(a OR b", "unbalanced"),
            ("a OR b)", "unbalanced"),
            ("", "empty"),
            ("a AND", "right-hand"),
            ("\"open", "unterminated"),
            (r"\u0041", "unicode"),
        ] {
            let e = parse(text, Dialect::QueryString, false).expect_err(text);
            assert!(e.0.contains(why), "{text}: {e}");
        }
        for (text, why) in [("-a", "modifier"), ("a*", "wildcard"), ("(a | b)", "parentheses"), ("a~1", "fuzziness"), ("a | b + c", "mixing"), ("", "empty")] {
            let e = parse(text, Dialect::Simple, false).expect_err(text);
            assert!(e.0.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn simple_syntax_splits_on_whitespace_with_the_default_operator() {
        assert_eq!(parse("a b", Dialect::Simple, false), Ok(Node::Any(vec![leaf(None, "a", "a"), leaf(None, "b", "b")])));
        assert_eq!(parse("a b", Dialect::Simple, true), Ok(Node::All(vec![leaf(None, "a", "a"), leaf(None, "b", "b")])));
        assert_eq!(parse("a+b + c", Dialect::Simple, false), Ok(Node::All(vec![leaf(None, "a", "a"), leaf(None, "b", "b"), leaf(None, "c", "c")])));
        assert_eq!(parse("k:v | \"x y\"", Dialect::Simple, true), Ok(Node::Any(vec![leaf(None, "k:v", "k:v"), leaf(None, "x y", "\"x y\"")])));
    }

    #[test]
    fn finds_qualifiers_leniently() {
        assert_eq!(qualifiers(r#"(actions.tags.a\:b:x* OR title:"q:z") AND -n:[1 TO 2]"#), vec!["actions.tags.a:b", "title", "n"]);
    }
}
