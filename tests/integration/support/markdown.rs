//! Just enough Markdown for the docs test (docs/guides.rs): the code a guide shows (inline
//! spans and fenced blocks), the lists of code words its prose gives, the commands its code
//! runs, its links and its headings' anchors. Not a Markdown parser: it reads the subset our
//! guides are written in, and says so where it could be fooled.

/// A piece of code in a guide: an inline span (newlines made spaces) or one line of a fenced
/// block.
pub struct Code {
    pub text: String,
    pub block: bool,
}

/// The prose of a guide (fenced blocks removed), and its code.
pub struct Parsed {
    pub prose: String,
    pub code: Vec<Code>,
}

pub fn parse(text: &str) -> Parsed {
    let mut prose = String::new();
    let mut code = Vec::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) if trimmed.starts_with(f) => fence = None,
            Some(_) => code.push(Code { text: line.to_string(), block: true }),
            None if trimmed.starts_with("```") || trimmed.starts_with("~~~") => {
                fence = Some(&trimmed[..3]);
                prose.push('\n');
            }
            None => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    for para in paragraphs(&prose) {
        code.extend(
            spans(para).into_iter().map(|(_, s, _)| Code { text: s.replace('\n', " "), block: false }),
        );
    }
    Parsed { prose, code }
}

/// Paragraphs: text between blank lines (an inline code span never crosses one).
pub fn paragraphs(prose: &str) -> Vec<&str> {
    prose.split("\n\n").filter(|p| !p.trim().is_empty()).collect()
}

/// The inline code spans of a paragraph: (start, content, end) with byte offsets of the
/// opening and after the closing backtick. Single backticks only, as our guides use.
pub fn spans(para: &str) -> Vec<(usize, String, usize)> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(open) = para[rest..].find('`').map(|i| rest + i) {
        let Some(close) = para[open + 1..].find('`').map(|i| open + 1 + i) else { break };
        out.push((open, para[open + 1..close].to_string(), close + 1));
        rest = close + 1;
    }
    out
}

/// A list of code words in prose: "`a`, `b` or `c`", with the text just before and after it.
pub struct List {
    pub items: Vec<String>,
    pub before: String,
    pub after: String,
}

/// Every run of two or more inline spans joined only by list separators.
pub fn lists(prose: &str) -> Vec<List> {
    let mut out = Vec::new();
    for para in paragraphs(prose) {
        let spans = spans(para);
        let mut i = 0;
        while i < spans.len() {
            let mut j = i;
            while j + 1 < spans.len() && is_separator(&para[spans[j].2..spans[j + 1].0]) {
                j += 1;
            }
            if j > i {
                let start = spans[i].0;
                let end = spans[j].2;
                out.push(List {
                    items: spans[i..=j].iter().map(|s| s.1.clone()).collect(),
                    before: tail(&para[..start], 60).replace('\n', " "),
                    after: para[end..].chars().take(20).collect::<String>().replace('\n', " "),
                });
            }
            i = j + 1;
        }
    }
    out
}

fn is_separator(s: &str) -> bool {
    let s = s.trim();
    matches!(s, "," | ", or" | ", and" | "or" | "and" | "/" | "|")
}

fn tail(s: &str, chars: usize) -> &str {
    let n = s.chars().count();
    let skip = n.saturating_sub(chars);
    s.char_indices().nth(skip).map_or(s, |(i, _)| &s[i..])
}

/// The commands of `program` that a piece of code runs: the words after the program's name,
/// up to the end of that command (`|`, `;`, `&&`, `)`, `#`, a redirection). The name counts
/// only where a command starts: at the start of the code, after `$ `, `sudo `, `-- `, `| `,
/// `; `, `&& `, `$(`, `exec `: not `worker-watcher@marie`, nor `-u worker-watcher`.
pub fn commands(code: &str, program: &str) -> Vec<Vec<String>> {
    let words = words(code);
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let name = w.strip_prefix("$(").unwrap_or(w);
        if name != program {
            continue;
        }
        let starts = i == 0
            || w.starts_with("$(")
            || matches!(words[i - 1].as_str(), "$" | "sudo" | "--" | "|" | ";" | "&&" | "exec" | "||");
        if !starts {
            continue;
        }
        let args = words[i + 1..]
            .iter()
            .take_while(|w| {
                !matches!(w.as_str(), "|" | ";" | "&&" | "||" | "#" | ">" | "<" | "2>&1")
                    && !w.starts_with(')')
            })
            .map(|w| w.trim_end_matches([')', ';']).to_string())
            .collect();
        out.push(args);
    }
    out
}

/// Shell-ish words: whitespace-separated, a quoted string ('…' or "…") kept as one word.
fn words(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '\'' || c == '"' {
                word.push(c);
                for q in chars.by_ref() {
                    word.push(q);
                    if q == c {
                        break;
                    }
                }
            } else {
                word.push(c);
            }
        }
        out.push(word);
    }
    out
}

/// Relative links `[text](target)` of a text (images too), outside code.
pub fn links(prose: &str) -> Vec<String> {
    let mut out = Vec::new();
    let text: String = paragraphs(prose)
        .into_iter()
        .map(|para| {
            let mut kept = String::new();
            let mut from = 0;
            for (start, _, end) in spans(para) {
                kept.push_str(&para[from..start]);
                from = end;
            }
            kept.push_str(&para[from..]);
            kept + "\n\n"
        })
        .collect();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].trim();
        let external = target.contains("://") || target.starts_with("mailto:");
        if !external && !target.is_empty() && !target.contains(' ') {
            out.push(target.to_string());
        }
        rest = &after[end..];
    }
    out
}

/// The anchors GitHub makes of a text's headings: lower case, punctuation dropped, spaces
/// made dashes, `-1`, `-2`… for repeats.
pub fn anchors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
        }
        let Some(title) = line.strip_prefix('#').filter(|_| !fence) else { continue };
        let title = title.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = out.iter().filter(|a| a.as_str() == slug || a.starts_with(&format!("{slug}-"))).count();
        out.push(if n == 0 { slug } else { format!("{slug}-{n}") });
    }
    out
}

#[test]
fn the_reader_reads_what_the_guides_use() {
    let p = parse(
        "Say `a`, `b` or `c` (e.g. `x`).\n\n```sh\n$ sudo watcherctl submit m \"x y\" --wait | jq .\n```\n",
    );
    let l = lists(&p.prose);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].items, ["a", "b", "c"]);
    let block: Vec<&Code> = p.code.iter().filter(|c| c.block).collect();
    assert_eq!(commands(&block[0].text, "watcherctl"), [["submit", "m", "\"x y\"", "--wait"]]);
    assert!(commands(
        "systemctl start worker-watcher@marie; runuser -u worker-watcher -- id",
        "worker-watcher"
    )
    .is_empty());
    assert_eq!(links("[a](docs/x.md#y) [b](https://e.org) `[c](d)`"), ["docs/x.md#y"]);
    assert_eq!(anchors("# A `b` c=\n## A b c\n"), ["a-b-c", "a-b-c-1"]);
}
