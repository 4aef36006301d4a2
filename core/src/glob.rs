//! File-name globs: `*` is any run of characters, `?` exactly one, the rest
//! literal. Selection (which files to take) and routing (which kind a file
//! holds) match names with the same function.

/// Matches `name` against `pattern`, where `*` is any run of characters
/// (possibly empty) and `?` exactly one character; everything else is literal.
///
/// The classic two-pointer algorithm: on a mismatch, backtrack to the last `*`
/// and let it swallow one more character. Linear in practice, never exponential.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == n[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_star_and_question_mark() {
        assert!(glob_match("cdr_data_*.csv", "cdr_data_20240101_000000.csv"));
        assert!(glob_match("cdr_data_*.csv", "cdr_data_.csv"));
        assert!(!glob_match("cdr_data_*.csv", "cdr_data_1.csv.gz"));
        assert!(!glob_match("cdr_data_*.csv", "xcdr_data_1.csv"));
        assert!(glob_match("cdr_data_*.csv.gz", "cdr_data_1.csv.gz"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*", ""));
        assert!(glob_match("**a**", "bab"));
        assert!(glob_match("*.csv", "a.csv.csv"));
        assert!(!glob_match("", "a"));
        assert!(glob_match("", ""));
        assert!(glob_match("a*b*c", "aXXbYYbZZc"));
        assert!(!glob_match("a*b*c", "aXXbYYbZZ"));
        // Multi-byte characters count as one for `?`.
        assert!(glob_match("caf?", "café"));
    }

    #[test]
    fn a_pathological_pattern_is_matched_in_linear_time() {
        let name = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        // A backtracking matcher would not finish this.
        assert!(!glob_match(&pattern, &name));
    }
}
