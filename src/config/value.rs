//! Parsers for setting values. Each returns `Err(())` and the caller reports the variable's
//! `expects` text from the table, so every message has the same shape.

pub fn uint(s: &str, min: u64, max: u64) -> Result<u64, ()> {
    let n: u64 = s.trim().parse().map_err(|_| ())?;
    if n < min || n > max {
        return Err(());
    }
    Ok(n)
}

pub fn float(s: &str, min: f64, min_inclusive: bool) -> Result<f64, ()> {
    let x: f64 = s.trim().parse().map_err(|_| ())?;
    let ok = x.is_finite() && if min_inclusive { x >= min } else { x > min };
    if ok {
        Ok(x)
    } else {
        Err(())
    }
}

pub fn boolean(s: &str) -> Result<bool, ()> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(()),
    }
}

/// Words split as a POSIX shell would, without running one.
pub fn words(s: &str) -> Result<Vec<String>, ()> {
    shell_words::split(s).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_bounds() {
        assert_eq!(uint("3", 1, 10), Ok(3));
        assert_eq!(uint(" 7 ", 1, 10), Ok(7));
        assert!(uint("0", 1, 10).is_err());
        assert!(uint("11", 1, 10).is_err());
        assert!(uint("abc", 0, 10).is_err());
        assert!(uint("-1", 0, 10).is_err());
        assert!(uint("1.5", 0, 10).is_err());
    }

    #[test]
    fn booleans() {
        assert_eq!(boolean("TRUE"), Ok(true));
        assert_eq!(boolean("off"), Ok(false));
        assert!(boolean("maybe").is_err());
    }

    #[test]
    fn words_split_without_shell() {
        assert_eq!(
            words("-p --output-format json"),
            Ok(vec!["-p".into(), "--output-format".into(), "json".into()])
        );
        assert_eq!(words(""), Ok(vec![]));
        assert_eq!(words("'a b' c"), Ok(vec!["a b".into(), "c".into()]));
        assert!(words("'unterminated").is_err());
    }
}
