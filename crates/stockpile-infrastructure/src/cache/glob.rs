//! Redis glob patterns, matched exactly as Redis matches them (`stringmatchlen` in `util.c`),
//! so that the in-memory cache removes the same keys that `SCAN MATCH` finds in Redis.
//!
//! - `*` matches any run of bytes, the empty one included; `?` matches one byte.
//! - `[abc]`, `[a-z]` (a reversed range such as `[z-a]` means the same) and `[^...]` match one
//!   byte in (or, with `^`, not in) the class; `\` escapes the next byte inside a class too.
//!   A `]` right after `[` or `[^` closes an empty class; a class left open runs to the end.
//! - `\x` matches `x` literally; a lone `\` at the end matches a `\`.
//!
//! Matching works on bytes, as Redis does: `?` matches one byte of a multi-byte character.
//! Every string is a valid pattern, so parsing cannot fail.

/// One element of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of bytes.
    Star,
    /// `?`: any one byte.
    Any,
    /// A byte that must appear as it is.
    Literal(u8),
    /// `[...]`: one byte in the class, or not in it when negated.
    Class { negated: bool, members: Vec<Member> },
}

/// A member of a character class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Byte(u8),
    /// Inclusive, with `low <= high`.
    Range(u8, u8),
}

impl Member {
    fn contains(self, byte: u8) -> bool {
        match self {
            Self::Byte(b) => b == byte,
            Self::Range(low, high) => (low..=high).contains(&byte),
        }
    }
}

impl Token {
    /// Whether this token, which is not a `*`, matches one byte.
    fn matches(&self, byte: u8) -> bool {
        match self {
            Self::Star | Self::Any => true,
            Self::Literal(b) => *b == byte,
            Self::Class { negated, members } => {
                members.iter().any(|m| m.contains(byte)) != *negated
            }
        }
    }
}

/// A Redis glob pattern, parsed once and matched against many keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Parses a pattern; every string is one.
    pub fn new(pattern: &str) -> Self {
        let bytes = pattern.as_bytes();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'*' => {
                    // Consecutive stars match what one star matches; one keeps matching linear.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                b'[' => {
                    let (token, next) = parse_class(bytes, i + 1);
                    tokens.push(token);
                    i = next;
                }
                b'\\' if i + 1 < bytes.len() => {
                    tokens.push(Token::Literal(bytes[i + 1]));
                    i += 2;
                }
                byte => {
                    tokens.push(Token::Literal(byte));
                    i += 1;
                }
            }
        }
        Self { tokens }
    }

    /// Whether the whole of `text` matches the pattern.
    pub fn matches(&self, text: &str) -> bool {
        // Every token but `*` takes exactly one byte, so remembering only the last star and
        // retrying from it one byte further on is complete, and costs O(pattern × text) at
        // worst, where naive recursion is exponential in the number of stars.
        let text = text.as_bytes();
        let (mut t, mut p) = (0, 0);
        let mut last_star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    last_star = Some((p, t));
                    p += 1;
                }
                Some(token) if token.matches(text[t]) => {
                    p += 1;
                    t += 1;
                }
                _ => match last_star {
                    Some((star, from)) => {
                        last_star = Some((star, from + 1));
                        p = star + 1;
                        t = from + 1;
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|token| *token == Token::Star)
    }
}

/// Parses a class whose `[` came just before `start`; returns it and where the pattern goes on.
fn parse_class(bytes: &[u8], start: usize) -> (Token, usize) {
    let mut i = start;
    let negated = bytes.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut members = Vec::new();
    loop {
        match bytes.get(i) {
            // Redis closes an unterminated class at the end of the pattern.
            None => return (Token::Class { negated, members }, i),
            Some(b']') => return (Token::Class { negated, members }, i + 1),
            Some(b'\\') if i + 1 < bytes.len() => {
                members.push(Member::Byte(bytes[i + 1]));
                i += 2;
            }
            Some(&low) if i + 2 < bytes.len() && bytes[i + 1] == b'-' => {
                let high = bytes[i + 2];
                members.push(Member::Range(low.min(high), low.max(high)));
                i += 3;
            }
            Some(&byte) => {
                members.push(Member::Byte(byte));
                i += 1;
            }
        }
    }
}

/// `literal` as a pattern that matches exactly it: every glob metacharacter is escaped.
///
/// The Redis adapter puts the escaped key prefix in front of every pattern, so a prefix such
/// as `a*:` can never widen a match to keys outside it.
pub fn escape(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len() * 2);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
