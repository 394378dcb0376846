//! A quick reader for the TOML a policy is written in: plain and quoted keys, `[table]` and
//! `[[array]]` headers, strings without escapes, decimal integers, booleans and arrays of them.
//! It builds the same tree as toml's parser, about five times faster on a policy with 10,000
//! overrides. Anything else (escapes, dotted keys, inline tables, floats, dates, CRLF, any error)
//! returns `None`: the caller then goes through toml, which also words every error.

use crate::parse::{Entries, Kind, Loc, Node};
use std::borrow::Cow;

type Table<'a> = Entries<'a>;

/// Past this, the linear lookups here would cost: go through toml.
const WIDE_TABLE: usize = 256;
/// Deeper arrays go through toml, which has its own limit.
const MAX_ARRAY_DEPTH: u32 = 8;

/// The bytes of a bare key: `A-Z a-z 0-9 _ -`.
const BARE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-');
        b += 1;
    }
    t
};

/// The document's root table, entries in file order, or `None` to go through toml.
pub(crate) fn document(text: &str, file: u32) -> Option<Table<'_>> {
    // Control characters other than tab and newline (CR included) are errors or need care.
    // A fold without an early exit: the compiler vectorises it.
    let control = text.bytes().fold(false, |seen, b| {
        seen | ((b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f)
    });
    if control || text.starts_with('\u{feff}') {
        return None;
    }
    let mut r = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        file,
        keys: Vec::new(),
        tree: Tree::default(),
    };
    r.run()?;
    let mut root = r.tree.root;
    if r.tree.moved {
        sort_by_position(&mut root);
    }
    Some(root)
}

struct Reader<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    file: u32,
    /// A header's keys, kept from one header to the next.
    keys: Vec<(Cow<'t, str>, Loc)>,
    tree: Tree<'t>,
}

impl<'t> Reader<'t> {
    fn loc(&self, offset: usize) -> Loc {
        Loc::new(self.file, offset)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_comment(&mut self) {
        if self.peek() == Some(b'#') {
            self.pos += self.bytes[self.pos..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(self.bytes.len() - self.pos);
        }
    }

    /// Blanks, a comment, then a newline or the end.
    fn end_of_line(&mut self) -> Option<()> {
        self.skip_blanks();
        self.skip_comment();
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.pos += 1;
                Some(())
            }
            Some(_) => None,
        }
    }

    fn run(&mut self) -> Option<()> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Some(()),
                Some(b'\n') => self.pos += 1,
                Some(b'#') => self.skip_comment(),
                Some(b'[') => self.header()?,
                Some(_) => self.key_value()?,
            }
        }
    }

    fn header(&mut self) -> Option<()> {
        let at = self.pos;
        let is_array = self.bytes.get(at + 1) == Some(&b'[');
        self.pos += if is_array { 2 } else { 1 };
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        loop {
            self.skip_blanks();
            let key_at = self.loc(self.pos);
            keys.push((self.key()?, key_at));
            self.skip_blanks();
            match self.peek()? {
                b'.' => self.pos += 1,
                b']' => break,
                _ => return None,
            }
        }
        let close: &[u8] = if is_array { b"]]" } else { b"]" };
        if !self.bytes[self.pos..].starts_with(close) {
            return None;
        }
        self.pos += close.len();
        self.end_of_line()?;
        self.tree.open(&keys, self.loc(at), is_array)?;
        self.keys = keys;
        Some(())
    }

    fn key_value(&mut self) -> Option<()> {
        let key_at = self.loc(self.pos);
        let key = self.key()?;
        self.skip_blanks();
        if self.peek()? != b'=' {
            return None; // a dotted key, or not TOML
        }
        self.pos += 1;
        self.skip_blanks();
        let value = self.value(0)?;
        self.end_of_line()?;
        self.tree.insert(key, key_at, value)
    }

    fn key(&mut self) -> Option<Cow<'t, str>> {
        match self.peek()? {
            b'"' | b'\'' => self.quoted(),
            _ => {
                let start = self.pos;
                let rest = &self.bytes[start..];
                self.pos += rest.iter().position(|&b| !BARE[b as usize]).unwrap_or(rest.len());
                (self.pos > start).then(|| Cow::Borrowed(&self.text[start..self.pos]))
            }
        }
    }

    /// `"…"` without escapes, or `'…'`; neither multi-line.
    fn quoted(&mut self) -> Option<Cow<'t, str>> {
        let quote = self.peek()?;
        let start = self.pos + 1;
        if self.bytes.get(start) == Some(&quote) && self.bytes.get(start + 1) == Some(&quote) {
            return None;
        }
        let len = self.bytes[start..]
            .iter()
            .position(|&b| b == quote || b == b'\n' || b == b'\\')?;
        let end = start + len;
        // Stopped at a newline, or at a backslash (an escape; in a literal string plain text, but
        // rare): toml's way.
        if self.bytes[end] != quote {
            return None;
        }
        self.pos = end + 1;
        Some(Cow::Borrowed(&self.text[start..end]))
    }

    fn value(&mut self, depth: u32) -> Option<Node<'t>> {
        let at = self.loc(self.pos);
        let kind = match self.peek()? {
            b'"' | b'\'' => Kind::Str(self.quoted()?),
            b'[' if depth < MAX_ARRAY_DEPTH => Kind::Array(self.array(depth + 1)?),
            b't' | b'f' => {
                let b = self.bytes[self.pos..].starts_with(b"true");
                let word: &[u8] = if b { b"true" } else { b"false" };
                if !self.bytes[self.pos..].starts_with(word) {
                    return None;
                }
                self.pos += word.len();
                Kind::Bool(b)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                if self.peek() == Some(b'-') {
                    self.pos += 1;
                }
                let digits = self.pos;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                let n = self.pos - digits;
                // Leading zeros, hex, underscores, floats and dates go through toml.
                if n == 0 || (n > 1 && self.bytes[digits] == b'0') {
                    return None;
                }
                Kind::Int(Cow::Borrowed(&self.text[start..self.pos]), 10)
            }
            _ => return None,
        };
        // A value ends at a blank, a separator, a comment or the line's end.
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\n' | b',' | b']' | b'#') => Some(Node { key: at, at, kind }),
            Some(_) => None,
        }
    }

    fn array(&mut self, depth: u32) -> Option<Vec<Node<'t>>> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_array_space();
            if self.peek()? == b']' {
                self.pos += 1;
                return Some(items);
            }
            items.push(self.value(depth)?);
            self.skip_array_space();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(items);
                }
                _ => return None,
            }
        }
    }

    fn skip_array_space(&mut self) {
        loop {
            self.skip_blanks();
            match self.peek() {
                Some(b'\n') => self.pos += 1,
                Some(b'#') => self.skip_comment(),
                _ => return,
            }
        }
    }
}

/// The tree under construction, with TOML's rules for headers.
#[derive(Default)]
struct Tree<'a> {
    root: Table<'a>,
    /// Index path from the root to the table that key/value pairs go into.
    current: Vec<usize>,
    /// Tables created by a header's path and not (yet) defined by a header of their own.
    implicit: Vec<Vec<usize>>,
    arrays_of_tables: Vec<Vec<usize>>,
    /// Entries go in as the text goes, in file order, but for a table defined after a header
    /// implied it: its key moves to the later header, and its parent needs sorting.
    moved: bool,
}

impl<'a> Tree<'a> {
    /// `[a.b.c]` or `[[a.b.c]]`: the path's tables exist (implicitly if new), then the last key.
    fn open(&mut self, keys: &[(Cow<'a, str>, Loc)], at: Loc, is_array: bool) -> Option<()> {
        let ((last, last_at), parents) = keys.split_last()?;
        // The current path's buffer, reused: a header per override.
        let mut path = std::mem::take(&mut self.current);
        path.clear();
        for (key, key_at) in parents {
            match find(self.table(&path)?, key) {
                Some(i) => {
                    path.push(i);
                    // Through a table only: into an array's last table is rare, toml does it.
                    self.table(&path)?;
                }
                None => {
                    let node = table_node(*key_at, *key_at);
                    let i = push(self.table_mut(&path)?, key.clone(), node)?;
                    path.push(i);
                    self.implicit.push(path.clone());
                }
            }
        }
        let existing = find(self.table(&path)?, last);
        match (existing, is_array) {
            (None, false) => {
                let i = push(self.table_mut(&path)?, last.clone(), table_node(*last_at, at))?;
                path.push(i);
            }
            (Some(i), false) => {
                path.push(i);
                // Only a table so far implied by another header's path may be defined now.
                let implied = self.implicit.iter().position(|p| *p == path)?;
                self.implicit.swap_remove(implied);
                self.moved = true;
                let node = self.node_mut(&path)?;
                node.key = *last_at;
                node.at = at;
            }
            (None, true) => {
                let node = Node {
                    key: *last_at,
                    at,
                    kind: Kind::Array(vec![table_node(at, at)]),
                };
                let i = push(self.table_mut(&path)?, last.clone(), node)?;
                path.push(i);
                self.arrays_of_tables.push(path.clone());
                path.push(0);
            }
            (Some(i), true) => {
                path.push(i);
                if !self.arrays_of_tables.contains(&path) {
                    return None;
                }
                let Kind::Array(items) = &mut self.node_mut(&path)?.kind else {
                    return None;
                };
                items.push(table_node(at, at));
                path.push(items.len() - 1);
            }
        }
        self.current = path;
        Some(())
    }

    fn insert(&mut self, key: Cow<'a, str>, key_at: Loc, value: Node<'a>) -> Option<()> {
        let current = std::mem::take(&mut self.current);
        let table = self.table_mut(&current);
        let done = table.and_then(|t| {
            if find(t, &key).is_some() {
                return None;
            }
            push(t, key, Node { key: key_at, ..value })
        });
        self.current = current;
        done.map(|_| ())
    }

    fn node_mut(&mut self, path: &[usize]) -> Option<&mut Node<'a>> {
        let (first, rest) = path.split_first()?;
        let mut node = &mut self.root.get_mut(*first)?.1;
        for &i in rest {
            node = match &mut node.kind {
                Kind::Table(t) => &mut t.get_mut(i)?.1,
                Kind::Array(a) => a.get_mut(i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    fn table_mut(&mut self, path: &[usize]) -> Option<&mut Table<'a>> {
        if path.is_empty() {
            return Some(&mut self.root);
        }
        match &mut self.node_mut(path)?.kind {
            Kind::Table(t) => Some(t),
            _ => None,
        }
    }

    fn table(&self, path: &[usize]) -> Option<&Table<'a>> {
        let Some((first, rest)) = path.split_first() else {
            return Some(&self.root);
        };
        let mut node = &self.root.get(*first)?.1;
        for &i in rest {
            node = match &node.kind {
                Kind::Table(t) => &t.get(i)?.1,
                Kind::Array(a) => a.get(i)?,
                _ => return None,
            };
        }
        match &node.kind {
            Kind::Table(t) => Some(t),
            _ => None,
        }
    }
}

fn table_node<'a>(key: Loc, at: Loc) -> Node<'a> {
    Node {
        key,
        at,
        // What a first push would allocate, without going through the growth path: 10,000 times.
        kind: Kind::Table(Vec::with_capacity(4)),
    }
}

fn find(table: &Table, key: &str) -> Option<usize> {
    table.iter().position(|(k, _)| k == key)
}

fn push<'a>(table: &mut Table<'a>, key: Cow<'a, str>, node: Node<'a>) -> Option<usize> {
    if table.len() >= WIDE_TABLE {
        return None;
    }
    table.push((key, node));
    Some(table.len() - 1)
}

/// Entries in the order of their keys in the file, as toml's way gives them.
fn sort_by_position(table: &mut Table) {
    table.sort_by_key(|(_, n)| n.key.offset);
    for (_, node) in table {
        sort_node(node);
    }
}

fn sort_node(node: &mut Node) {
    match &mut node.kind {
        Kind::Table(t) => sort_by_position(t),
        Kind::Array(items) => items.iter_mut().for_each(sort_node),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::full_tree;
    use std::path::Path;

    /// Where the quick way gives a tree, it is toml's tree, to the byte offset.
    fn same_as_toml(text: &str) -> bool {
        match document(text, 0) {
            Some(quick) => {
                let full = full_tree(text, 0);
                assert_eq!(full.as_ref().ok(), Some(&quick), "differs for:\n{text}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn tricky_shapes_match_toml_or_go_through_it() {
        let quick = [
            "",
            "\n\n# only a comment",
            "a = 1\nb = \"x\"\nc = 'y'\n",
            "a=1#c\nb=-7\nc=0\nd=\"\"\ne=-0\n",
            "[users]\nmemory_max = \"1G\"\n[[override]]\nuser = \"a\"\n[[override]]\nuser = \"b\"\n",
            "[trees.x]\nservice = \"a@.service\"\n[trees.y]\nslice = \"b.slice\"\n",
            "[a.b]\nc = 1\n[a]\nd = 2\n",
            "[x.a.b]\nk = 1\n[x.c]\n[x.a]\nj = 2\n",
            "[ a . \"b c\" ]  # header\n'k' = [1, [2, 3], \"x\",]\n",
            "x = [\n  1, # one\n  2,\n]\nw = true\nv = false",
            "[[a]]\n[[a]]\nk = 1\n[b]\n",
        ];
        for text in quick {
            assert!(same_as_toml(text), "expected the quick way for:\n{text}");
        }
        let through_toml = [
            "a.b = 1\n",
            "a = { b = 1 }\n",
            "t = 1979-05-27\n",
            "f = 1.5\n",
            "h = 0x1F\n",
            "u = 1_000\n",
            "z = 01\n",
            "p = +1\n",
            "s = \"a\\tb\"\n",
            "m = \"\"\"x\"\"\"\n",
            "a = 1\r\n",
            "a = 1\na = 2\n",
            "[a]\n[a]\n",
            "[a.b]\n[a.b]\n",
            "a = 1\n[a.b]\n",
            "[[a]]\n[a]\n",
            "[a.b]\n[[a]]\n",
            "[[a]]\n[a.b]\n",
            "a = [1\n",
            "\"a\" = 1\na = 2\n",
            "a = 1 b = 2\n",
            "[a] b = 1\n",
            "[ [a] ]\n",
            "a = truex\n",
            "a = \"x\ny\"\n",
            "a = \"\u{1}\"\n",
        ];
        for text in through_toml {
            assert!(!same_as_toml(text), "expected toml's way for:\n{text}");
        }
    }

    #[test]
    fn every_corpus_and_shipped_policy_matches_toml() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for p in [
            "packaging/policy.toml",
            "examples/devvm.toml",
            "tests/vm/policy.toml",
        ] {
            let text = std::fs::read_to_string(root.join(p)).unwrap();
            assert!(same_as_toml(&text), "{p} should go the quick way");
        }
        // The fuzz corpus is mostly broken TOML: that goes through toml; the rest must match.
        let mut quick = 0;
        for entry in std::fs::read_dir(root.join("fuzz/corpus/policy")).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if let Ok(text) = String::from_utf8(bytes) {
                quick += usize::from(same_as_toml(&text));
            }
        }
        assert!(quick > 100, "only {quick} corpus files went the quick way");
    }
}
