//! Counting a document's lexical tokens without parsing it, so that a huge document is
//! refused after reading no more of it than the limit allows.

/// The number of GraphQL tokens in `source`, or `None` as soon as there are more than
/// `limit`. Punctuators, names, numbers and strings count one each; whitespace, commas and
/// comments count nothing. Bytes that start no token count one each: the parser refuses
/// them later, and counting them keeps a document of garbage bounded too.
pub fn count_within(source: &str, limit: usize) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut at = 0;
    let mut count = 0;
    while at < bytes.len() {
        at = match bytes[at] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                at += 1;
                continue;
            }
            b'#' => {
                at = skip_while(bytes, at, |byte| byte != b'\n' && byte != b'\r');
                continue;
            }
            b'"' if bytes[at..].starts_with(b"\"\"\"") => block_string_end(bytes, at + 3),
            b'"' => string_end(bytes, at + 1),
            b'.' if bytes[at..].starts_with(b"...") => at + 3,
            byte if byte == b'_' || byte.is_ascii_alphabetic() => skip_while(bytes, at, |byte| {
                byte == b'_' || byte.is_ascii_alphanumeric()
            }),
            byte if byte == b'-' || byte.is_ascii_digit() => skip_while(bytes, at + 1, |byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'+' | b'-')
            }),
            _ => at + 1,
        };
        count += 1;
        if count > limit {
            return None;
        }
    }
    Some(count)
}

fn skip_while(bytes: &[u8], mut at: usize, keep: impl Fn(u8) -> bool) -> usize {
    while at < bytes.len() && keep(bytes[at]) {
        at += 1;
    }
    at
}

/// Past the closing quote of a string that opened before `at`; a string left open ends
/// at the end of its line, as the parser will report.
fn string_end(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            b'\n' | b'\r' => return at,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// Past the `"""` that closes a block string opened before `at` (`\"""` does not close it).
fn block_string_end(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() {
        if bytes[at..].starts_with(b"\\\"\"\"") {
            at += 4;
        } else if bytes[at..].starts_with(b"\"\"\"") {
            return at + 3;
        } else {
            at += 1;
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::count_within;

    #[test]
    fn counts_each_kind_of_token_once() {
        let query = r#"query Q($a: Int = -1.5e3) { f(s: "x, \"y\"", b: """ "" """) @skip(if: false) { ...F } } # c, d"#;
        // query Q ( $ a : Int = -1.5e3 ) { f ( s : "…" , b : """…""" ) @ skip ( if : false ) { ... F } }
        assert_eq!(count_within(query, 1000), Some(32));
    }

    #[test]
    fn stops_at_the_limit() {
        let query = "{ a }".repeat(1_000_000);
        assert_eq!(count_within(&query, 10), None);
        assert_eq!(count_within("{ a }", 3), Some(3));
        assert_eq!(count_within("{ a }", 2), None);
    }
}
