//! The reference for glob matching, in a file of its own so that the fuzz target
//! `fuzz/fuzz_targets/glob.rs` checks the matcher against the very same port.

/// Redis's `stringmatchlen` (`util.c`), ported line by line without its optimisations: the
/// reference the matcher must agree with.
pub fn redis_stringmatch(pattern: &[u8], string: &[u8]) -> bool {
    let (pl, sl) = (pattern.len(), string.len());
    let (mut p, mut s) = (0, 0);
    while p < pl && s < sl {
        match pattern[p] {
            b'*' => {
                while p + 1 < pl && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pl {
                    return true;
                }
                while s < sl {
                    if redis_stringmatch(&pattern[p + 1..], &string[s..]) {
                        return true;
                    }
                    s += 1;
                }
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negated = p < pl && pattern[p] == b'^';
                if negated {
                    p += 1;
                }
                let mut matched = false;
                loop {
                    if p + 1 < pl && pattern[p] == b'\\' {
                        p += 1;
                        matched |= pattern[p] == string[s];
                    } else if p < pl && pattern[p] == b']' {
                        break;
                    } else if p >= pl {
                        p -= 1;
                        break;
                    } else if p + 2 < pl && pattern[p + 1] == b'-' {
                        let (low, high) = (pattern[p], pattern[p + 2]);
                        let (low, high) = (low.min(high), low.max(high));
                        matched |= (low..=high).contains(&string[s]);
                        p += 2;
                    } else {
                        matched |= pattern[p] == string[s];
                    }
                    p += 1;
                }
                if matched == negated {
                    return false;
                }
                s += 1;
            }
            b'\\' if p + 1 < pl => {
                p += 1;
                if pattern[p] != string[s] {
                    return false;
                }
                s += 1;
            }
            literal => {
                if literal != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == sl {
            while p < pl && pattern[p] == b'*' {
                p += 1;
            }
            break;
        }
    }
    p == pl && s == sl
}
