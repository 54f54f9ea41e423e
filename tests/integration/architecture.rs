//! The "Never" rules of ARCHITECTURE.md ("Invariants"), held.
//!
//! The import rules: the graph of top-level modules is built from every
//! `crate::` path in `src/` (in use lines and inline, grouped
//! `crate::{a, b::c}` ones included) and every `super::` chain that climbs
//! to the crate root; comments and string literals are not code and are
//! skipped. It fails, naming the file and line, on a cycle between
//! top-level modules, and on an edge the rules forbid. The crate root
//! (`lib.rs`) may import anything.
//!
//! The place rules: a few calls belong to one place (the environment is
//! read by `cli` alone, the process is ended by `exit` alone, the heartbeat
//! is beaten by the loop alone); anywhere else outside a test module, the
//! call is named with its file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::kit::shipped::shipped;

/// What a module must not import: the domain knows no transport and no
/// flags (ARCHITECTURE.md, "Invariants").
const MUST_NOT_IMPORT: &[(&str, &[&str])] = &[
    ("bot", &["http", "web", "cli"]),
    ("health", &["http", "bot", "cli"]),
];

/// Who alone may import a module, besides the crate root: the flags are
/// turned into settings once, and the dashboard is another process.
const ONLY_IMPORTED_BY: &[(&str, &[&str])] = &[("cli", &[]), ("web", &["cli"])];

/// Calls that belong to one place: the path's last segments, and the files
/// (or folders, ending in `/`) under `src/` where they may be written.
const ONLY_CALLED_IN: &[(&[&str], &[&str], &str)] = &[
    (&["env", "var"], &["cli/"], "settings are read once, by cli"),
    (
        &["env", "var_os"],
        &["cli/"],
        "settings are read once, by cli",
    ),
    (
        &["env", "vars"],
        &["cli/"],
        "settings are read once, by cli",
    ),
    (
        &["process", "exit"],
        &["exit.rs", "reaper.rs"],
        "the process ends in one place (the PID 1 init passes on the daemon's status)",
    ),
    (
        &["beat"],
        &["bot/run.rs", "health/state.rs"],
        "only the loop beats the heartbeat",
    ),
];

#[test]
fn the_import_rules_hold() {
    let problems = check(&source_files());
    assert!(
        problems.is_empty(),
        "the import rules are broken (ARCHITECTURE.md, \"Invariants\"):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_place_rules_hold() {
    let problems = misplaced(&source_files());
    assert!(
        problems.is_empty(),
        "a call is out of its place (ARCHITECTURE.md, \"Invariants\"):\n{}",
        problems.join("\n")
    );
}

/// Every call of [`ONLY_CALLED_IN`] written outside its place, outside a
/// test module (`#[cfg(test)] mod tests`, which is left out whole).
fn misplaced(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, text) in files {
        let code = text
            .split_once("#[cfg(test)]\nmod tests")
            .map_or(text.as_str(), |(code, _)| code);
        let tokens = tokens(code);
        let words: Vec<(&str, usize)> = tokens
            .iter()
            .filter_map(|(token, line)| match token {
                Token::Ident(word) => Some((word.as_str(), *line)),
                Token::Path => Some(("::", *line)),
                _ => None,
            })
            .collect();
        for (path, places, why) in ONLY_CALLED_IN {
            if places.iter().any(|place| file.starts_with(place)) {
                continue;
            }
            let pattern: Vec<&str> = path
                .iter()
                .enumerate()
                .flat_map(|(index, segment)| {
                    (index > 0).then_some("::").into_iter().chain([*segment])
                })
                .collect();
            for found in words.windows(pattern.len()) {
                if found
                    .iter()
                    .map(|(word, _)| *word)
                    .eq(pattern.iter().copied())
                {
                    problems.push(format!(
                        "src/{file}:{}: {} outside {}: {why}",
                        found[0].1,
                        path.join("::"),
                        places.join(", ")
                    ));
                }
            }
        }
    }
    problems
}

/// Every `.rs` file under `src/`: its path relative to `src/` and its text.
fn source_files() -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(root).unwrap().to_str().unwrap();
                files.push((relative.to_owned(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = shipped("src");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    assert!(files.len() > 20, "src/ holds only {} files", files.len());
    files
}

/// One import of a top-level module by another, where it is written.
#[derive(Clone, Debug)]
struct Import {
    from: String,
    to: String,
    file: String,
    line: usize,
}

impl Import {
    fn place(&self) -> String {
        format!("src/{}:{}", self.file, self.line)
    }
}

/// Every broken rule in `files` (paths relative to `src/`), one line each.
fn check(files: &[(String, String)]) -> Vec<String> {
    let imports = imports(files);
    let mut problems = Vec::new();
    for import in &imports {
        let forbidden = MUST_NOT_IMPORT
            .iter()
            .any(|(from, to)| *from == import.from && to.contains(&import.to.as_str()));
        if forbidden {
            problems.push(format!(
                "{}: {} imports {}, which {} must not import",
                import.place(),
                import.from,
                import.to,
                import.from
            ));
        }
        let outsider = ONLY_IMPORTED_BY
            .iter()
            .find(|(to, allowed)| *to == import.to && !allowed.contains(&import.from.as_str()));
        if let Some((to, allowed)) = outsider {
            let who = std::iter::once("the crate root")
                .chain(allowed.iter().copied())
                .collect::<Vec<_>>()
                .join(" and ");
            problems.push(format!(
                "{}: {} imports {to}, which only {who} may import",
                import.place(),
                import.from,
            ));
        }
    }
    problems.extend(cycles(&imports));
    problems
}

/// The cycles between top-level modules: each group of modules that reach
/// one another, with the imports that link two of them (the first of each
/// pair of modules, and how many more).
fn cycles(imports: &[Import]) -> Vec<String> {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for import in imports {
        edges.entry(&import.from).or_default().insert(&import.to);
    }
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut next = vec![from];
        while let Some(module) = next.pop() {
            for to in edges.get(module).into_iter().flatten() {
                if seen.insert(*to) {
                    next.push(to);
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&str, BTreeSet<&str>> = edges.keys().map(|m| (*m, reach(m))).collect();
    let mut groups: BTreeSet<BTreeSet<&str>> = BTreeSet::new();
    for (module, reaches) in &reached {
        let group: BTreeSet<&str> = reaches
            .iter()
            .copied()
            .filter(|other| reached.get(other).is_some_and(|back| back.contains(module)))
            .collect();
        if group.len() > 1 {
            groups.insert(group);
        }
    }
    groups
        .iter()
        .map(|group| {
            let mut linked: BTreeMap<(&str, &str), Vec<&Import>> = BTreeMap::new();
            for import in imports {
                if group.contains(import.from.as_str()) && group.contains(import.to.as_str()) {
                    linked
                        .entry((&import.from, &import.to))
                        .or_default()
                        .push(import);
                }
            }
            let links: Vec<String> = linked
                .iter()
                .map(|((from, to), imports)| match imports.len() {
                    1 => format!("{from} -> {to} at {}", imports[0].place()),
                    more => format!("{from} -> {to} at {} (+{})", imports[0].place(), more - 1),
                })
                .collect();
            format!(
                "cycle between {}: {}",
                group.iter().copied().collect::<Vec<_>>().join(", "),
                links.join("; ")
            )
        })
        .collect()
}

/// Every import between two different top-level modules in `files`. The
/// top-level modules are the `mod` lines of `lib.rs`; a path to one of its
/// other names (`crate::Error`) is an import of the module it re-exports.
fn imports(files: &[(String, String)]) -> Vec<Import> {
    let root = files
        .iter()
        .find(|(file, _)| file == "lib.rs")
        .map(|(_, text)| tokens(text))
        .unwrap_or_default();
    let modules: BTreeSet<&str> = root
        .windows(2)
        .filter_map(|pair| match pair {
            [(Token::Ident(word), _), (Token::Ident(name), _)] if word == "mod" => {
                Some(name.as_str())
            }
            _ => None,
        })
        .collect();
    let mut root_uses = Vec::new();
    for (index, (token, line)) in root.iter().enumerate() {
        if *token == Token::Ident("use".to_owned()) {
            tree(&root, index + 1, &[], *line, &mut root_uses);
        }
    }
    let reexports: BTreeMap<&str, &str> = root_uses
        .iter()
        .filter_map(|(path, _)| Some((path.last()?.as_str(), path.first()?.as_str())))
        .filter(|(_, module)| modules.contains(module))
        .collect();
    let module_of = |name: &str| modules.get(name).or_else(|| reexports.get(name)).copied();
    let mut found = Vec::new();
    for (file, text) in files {
        let at = module_path(file);
        let Some(from) = at.first() else {
            continue;
        };
        let in_file: BTreeSet<(usize, &str)> = paths(&tokens(text), &at)
            .iter()
            .filter_map(|(path, line)| Some((*line, module_of(path.first()?)?)))
            .filter(|(_, to)| to != from)
            .collect();
        found.extend(in_file.into_iter().map(|(line, to)| Import {
            from: from.clone(),
            to: to.to_owned(),
            file: file.clone(),
            line,
        }));
    }
    found
}

/// The module a file under `src/` is: `bot/signal/scan.rs` is
/// `bot::signal::scan`, `bot/mod.rs` is `bot`; `lib.rs` (and `main.rs`,
/// another crate) the root.
fn module_path(file: &str) -> Vec<String> {
    let mut path: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if path.last().is_some_and(|last| last == "mod") || file == "lib.rs" || file == "main.rs" {
        path.pop();
    }
    path
}

/// Every path in `tokens` that starts at the crate root (`crate::`), or
/// climbs to or past a module by `super::` from `at`, the module the file
/// is; each as its segments from the root, with its line. Inside an
/// inline `mod name { … }`, `super` starts from that module.
fn paths(tokens: &[(Token, usize)], at: &[String]) -> Vec<(Vec<String>, usize)> {
    let mut found = Vec::new();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut index = 0;
    while index < tokens.len() {
        let after_path = index > 0 && tokens[index - 1].0 == Token::Path;
        match &tokens[index] {
            (Token::Open, _) => depth += 1,
            (Token::Close, _) => {
                if inline.last().is_some_and(|(_, opened)| *opened == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            (Token::Ident(word), _) if word == "mod" => {
                if let [(Token::Ident(name), _), (Token::Open, _), ..] = &tokens[index + 1..] {
                    inline.push((name.clone(), depth + 1));
                }
            }
            (Token::Ident(word), line)
                if word == "crate"
                    && !after_path
                    && tokens.get(index + 1).map(|t| &t.0) == Some(&Token::Path) =>
            {
                index = tree(tokens, index + 2, &[], *line, &mut found);
                continue;
            }
            (Token::Ident(word), line) if word == "super" && !after_path => {
                let mut here: Vec<String> = at.to_vec();
                here.extend(inline.iter().map(|(name, _)| name.clone()));
                let mut next = index;
                while matches!(&tokens[next..], [(Token::Ident(word), _), (Token::Path, _), ..] if word == "super")
                {
                    if here.pop().is_none() {
                        break;
                    }
                    next += 2;
                }
                if next > index {
                    index = tree(tokens, next, &here, *line, &mut found);
                    continue;
                }
            }
            _ => {}
        }
        index += 1;
    }
    found
}

/// Reads a use tree or a path from `index`, below `base`, into `found`;
/// returns the index after it. Nested groups are read whole, so a `crate`
/// or `super` inside one is never read twice.
fn tree(
    tokens: &[(Token, usize)],
    index: usize,
    base: &[String],
    line: usize,
    found: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    match tokens.get(index) {
        Some((Token::Ident(name), _)) => {
            let mut path = base.to_vec();
            if name != "self" {
                path.push(name.clone());
            }
            if tokens
                .get(index + 1)
                .is_some_and(|(token, _)| *token == Token::Path)
            {
                return tree(tokens, index + 2, &path, line, found);
            }
            found.push((path, line));
            index + 1
        }
        Some((Token::Open, _)) => {
            let mut index = index + 1;
            loop {
                match tokens.get(index) {
                    None => return index,
                    Some((Token::Close, _)) => return index + 1,
                    Some((Token::Comma, _)) => index += 1,
                    Some((_, at_line)) => index = tree(tokens, index, base, *at_line, found),
                }
            }
        }
        _ => {
            found.push((base.to_vec(), line));
            index + 1
        }
    }
}

/// The little of Rust's tokens that paths are made of.
#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    Path,
    Open,
    Close,
    Comma,
    Other,
}

/// `text` as tokens with their lines, comments and literals left out.
fn tokens(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut at = 0;
    while let Some(&c) = chars.get(at) {
        let next = chars.get(at + 1).copied();
        let start = at;
        at += 1;
        match c {
            c if c.is_whitespace() => {}
            '/' if next == Some('/') => at = skip_until(&chars, at, "\n") - 1,
            '/' if next == Some('*') => at = skip_block_comment(&chars, at + 1),
            '"' => at = skip_string(&chars, at),
            '\'' => at = skip_char_or_lifetime(&chars, at),
            ':' if next == Some(':') => {
                tokens.push((Token::Path, line));
                at += 1;
            }
            '{' => tokens.push((Token::Open, line)),
            '}' => tokens.push((Token::Close, line)),
            ',' => tokens.push((Token::Comma, line)),
            c if c.is_alphanumeric() || c == '_' => {
                while chars
                    .get(at)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    at += 1;
                }
                let word: String = chars[start..at].iter().collect();
                match (word.as_str(), chars.get(at)) {
                    ("r" | "br" | "cr", Some('#' | '"')) if raw_string_at(&chars, at) => {
                        at = skip_raw_string(&chars, at);
                    }
                    ("r", Some('#')) => at += 1,
                    ("b" | "c", Some('"')) => at = skip_string(&chars, at + 1),
                    ("b", Some('\'')) => at = skip_char_or_lifetime(&chars, at + 1),
                    _ if c.is_ascii_digit() => tokens.push((Token::Other, line)),
                    _ => tokens.push((Token::Ident(word), line)),
                }
            }
            _ => tokens.push((Token::Other, line)),
        }
        at = at.min(chars.len());
        line += chars[start..at].iter().filter(|c| **c == '\n').count();
    }
    tokens
}

/// The index just past the next `end` from `at` (or the end of the text).
fn skip_until(chars: &[char], at: usize, end: &str) -> usize {
    let end: Vec<char> = end.chars().collect();
    (at..chars.len())
        .find(|index| chars[*index..].starts_with(&end))
        .map_or(chars.len(), |index| index + end.len())
}

/// Past a block comment whose `/*` ends before `at`; they nest.
fn skip_block_comment(chars: &[char], mut at: usize) -> usize {
    let mut depth = 1;
    while depth > 0 && at < chars.len() {
        if chars[at..].starts_with(&['/', '*']) {
            depth += 1;
            at += 2;
        } else if chars[at..].starts_with(&['*', '/']) {
            depth -= 1;
            at += 2;
        } else {
            at += 1;
        }
    }
    at
}

/// Past a string whose opening quote ends before `at`.
fn skip_string(chars: &[char], mut at: usize) -> usize {
    while let Some(c) = chars.get(at) {
        at += if *c == '\\' { 2 } else { 1 };
        if *c == '"' {
            break;
        }
    }
    at
}

fn raw_string_at(chars: &[char], at: usize) -> bool {
    let hashes = chars[at..].iter().take_while(|c| **c == '#').count();
    chars.get(at + hashes) == Some(&'"')
}

/// Past a raw string whose `#`s (if any) and quote start at `at`.
fn skip_raw_string(chars: &[char], at: usize) -> usize {
    let hashes = chars[at..].iter().take_while(|c| **c == '#').count();
    let end: String = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    skip_until(chars, at + hashes + 1, &end)
}

/// Past a char literal whose quote ends before `at`; a lifetime's quote
/// alone (its name is read as a word, harmlessly).
fn skip_char_or_lifetime(chars: &[char], at: usize) -> usize {
    match (chars.get(at), chars.get(at + 1)) {
        (Some('\\'), _) => skip_until(chars, at + 2, "'"),
        (Some(_), Some('\'')) => at + 2,
        _ => at,
    }
}

#[test]
fn the_checker_finds_every_kind_of_broken_rule_in_a_made_up_tree() {
    let tree: Vec<(String, String)> = [
        (
            "lib.rs",
            "mod bot;\nmod cli;\nmod error;\nmod health;\nmod http;\nmod metrics;\nmod util;\nmod web;\npub use error::Error;\n",
        ),
        (
            "bot/mod.rs",
            "mod intake;\nuse crate::{health::State, metrics};\n/* crate::web, /* nested */ crate::cli */\n",
        ),
        (
            "bot/intake/webhook.rs",
            "// crate::web in a comment\nconst S: &str = \"crate::cli \\\" crate::web\";\nconst R: &str = r#\"crate::web\"#;\nfn f<'a>(c: char) -> bool { c == '{' || c == '\\'' }\nfn g() { super::super::super::http::serve() }\n",
        ),
        (
            "health/mod.rs",
            "use crate::metrics;\npub(super) fn h() {}\n#[cfg(test)]\nmod tests {\n    use super::super::bot::Fill;\n}\n",
        ),
        (
            "http/mod.rs",
            "use crate::{\n    bot::{self, signal::Side},\n    bot::Fill,\n    health,\n};\n",
        ),
        ("error.rs", "use crate::cli::ConfigError;\n"),
        ("cli/mod.rs", "use crate::web::Settings;\nuse super::util;\n"),
        ("web/mod.rs", "use crate::http::server;\n"),
        (
            "util.rs",
            "pub(crate) fn page() -> crate::web::Page { todo!() }\nfn f() -> crate::cli::Args {}\nfn g() -> crate::Error {}\n",
        ),
    ]
    .into_iter()
    .map(|(file, text)| (file.to_owned(), text.to_owned()))
    .collect();
    assert_eq!(
        check(&tree),
        [
            "src/bot/intake/webhook.rs:5: bot imports http, which bot must not import",
            "src/health/mod.rs:5: health imports bot, which health must not import",
            "src/error.rs:1: error imports cli, which only the crate root may import",
            "src/util.rs:1: util imports web, which only the crate root and cli may import",
            "src/util.rs:2: util imports cli, which only the crate root may import",
            "cycle between bot, health, http: bot -> health at src/bot/mod.rs:2; \
             bot -> http at src/bot/intake/webhook.rs:5; health -> bot at src/health/mod.rs:5; \
             http -> bot at src/http/mod.rs:2 (+1); http -> health at src/http/mod.rs:4",
            "cycle between cli, error, util: cli -> util at src/cli/mod.rs:2; \
             error -> cli at src/error.rs:1; util -> cli at src/util.rs:2; \
             util -> error at src/util.rs:3",
        ]
    );
}

#[test]
fn the_place_checker_finds_a_call_out_of_its_place() {
    let tree: Vec<(String, String)> = [
        (
            "cli/mod.rs",
            "fn f() { std::env::var(\"PORT\"); }\n",
        ),
        (
            "bot/run.rs",
            "fn f(h: Heartbeat) { h.beat(); }\n",
        ),
        (
            "bot/intake/file.rs",
            "// std::env::var in a comment\nfn f() { let v = env::var(\"X\"); std::process::exit(1); }\n#[cfg(test)]\nmod tests {\n    fn t() { std::env::var(\"T\"); }\n}\n",
        ),
        ("health/judge.rs", "fn f(h: Heartbeat) {\n    h.beat();\n}\n"),
    ]
    .into_iter()
    .map(|(file, text)| (file.to_owned(), text.to_owned()))
    .collect();
    assert_eq!(
        misplaced(&tree),
        [
            "src/bot/intake/file.rs:2: env::var outside cli/: settings are read once, by cli",
            "src/bot/intake/file.rs:2: process::exit outside exit.rs, reaper.rs: the process ends in one place (the PID 1 init passes on the daemon's status)",
            "src/health/judge.rs:2: beat outside bot/run.rs, health/state.rs: only the loop beats the heartbeat",
        ]
    );
}
