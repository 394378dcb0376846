//! A policy file's TOML as a tree of spanned nodes, built from the events of toml's own parser
//! (`toml_parser`), with TOML's rules for tables, and every error in the file collected.
//! Keys and strings borrow from the text where they can.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::lexer::{Token, TokenKind};
use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, Expected, ParseError, Source, Span};

/// A place in one of the files; line and column are worked out only for a message or an origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) file: u32,
    pub(crate) offset: u32,
}

impl Loc {
    pub(crate) fn new(file: u32, offset: usize) -> Loc {
        Loc {
            file,
            // A policy is at most a few MB (the generator refuses bigger files).
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
        }
    }
}

/// A table's entries in file order.
pub(crate) type Entries<'a> = Vec<(Cow<'a, str>, Node<'a>)>;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node<'a> {
    pub(crate) key: Loc,
    pub(crate) at: Loc,
    pub(crate) kind: Kind<'a>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind<'a> {
    Table(Entries<'a>),
    Array(Vec<Node<'a>>),
    /// `[[name]]`: an array of tables, their entries in one vector. Boxed: a node is moved
    /// and stored for every value in the file, and this would double its size.
    Tables(Box<TableArray<'a>>),
    Str(Cow<'a, str>),
    /// Kept as text so that out-of-range integers get a clear message, not a wrap.
    Int(Cow<'a, str>, u32),
    Float,
    Bool(bool),
    Datetime,
}

impl Kind<'_> {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Kind::Table(_) => "a table",
            Kind::Array(_) | Kind::Tables(_) => "an array",
            Kind::Str(_) => "a string",
            Kind::Int(..) => "an integer",
            Kind::Float => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime => "a date",
        }
    }
}

impl<'a> Kind<'a> {
    /// An array's items, the tables of an array of tables made nodes of their own.
    pub(crate) fn items(&self) -> Option<Cow<'_, [Node<'a>]>> {
        match self {
            Kind::Array(items) => Some(Cow::Borrowed(items)),
            Kind::Tables(tables) => Some(Cow::Owned(tables.nodes())),
            _ => None,
        }
    }
}

/// The tables of an array of tables (`[[override]]` 10,000 times): their entries share one
/// vector, which is made and freed once, where a vector each would be 10,000.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TableArray<'a> {
    entries: Entries<'a>,
    /// Each table's header and its entries' range.
    tables: Vec<(Loc, u32, u32)>,
}

impl<'a> TableArray<'a> {
    /// Each table's header and entries, in file order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Loc, &[(Cow<'a, str>, Node<'a>)])> {
        let entries = &self.entries;
        self.tables
            .iter()
            .map(move |(at, start, end)| (at, &entries[*start as usize..*end as usize]))
    }

    pub(crate) fn len(&self) -> usize {
        self.tables.len()
    }

    /// The tables as nodes of an array.
    pub(crate) fn nodes(&self) -> Vec<Node<'a>> {
        self.iter()
            .map(|(at, entries)| Node {
                key: *at,
                at: *at,
                kind: Kind::Table(entries.to_vec()),
            })
            .collect()
    }

    /// `other`'s tables after these.
    pub(crate) fn append(&mut self, mut other: TableArray<'a>) {
        let shift = self.entries.len() as u32;
        self.entries.append(&mut other.entries);
        let moved = other.tables.into_iter();
        self.tables
            .extend(moved.map(|(at, start, end)| (at, start + shift, end + shift)));
    }
}

/// toml's limit on nested arrays and inline tables, and on a key's dotted parts.
const MAX_DEPTH: u32 = 80;

/// Tokens parsed at a time: a chunk stays in the CPU's caches, where a whole policy's tokens
/// (24 bytes each, ~24 per override) would cost megabytes of fresh pages.
const CHUNK: usize = 2048;

/// A file read without error: its root table, entries in file order, and the line of each
/// table header, as the reading counted them.
#[derive(Debug, PartialEq)]
pub(crate) struct Document<'a> {
    pub(crate) root: Entries<'a>,
    pub(crate) headers: Vec<LineMark>,
}

/// A place's 0-based line and the offset that line starts at: an override's origin is its
/// header, whose line is known without counting the text's newlines up to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LineMark {
    pub(crate) offset: u32,
    pub(crate) line: u32,
    pub(crate) line_start: u32,
}

/// One file's document, or every error in the file, each worded as toml words it, in the
/// order toml reports them (its own first error comes first).
pub(crate) fn document(text: &str, file: u32) -> Result<Document<'_>, Vec<(Loc, String)>> {
    document_in_chunks(text, file, CHUNK)
}

/// True when reading `text` cut after every line gives what reading it whole gives, and the
/// headers' lines are the text's (for fuzzing).
#[doc(hidden)]
pub fn chunked_reading_agrees(text: &str) -> bool {
    let cut = document_in_chunks(text, 0, 1);
    let lines_agree = cut.as_ref().map_or(true, |d| headers_agree(text, &d.headers));
    lines_agree && cut == document_in_chunks(text, 0, usize::MAX)
}

/// True when each header's line and line start are those counted from the text.
fn headers_agree(text: &str, headers: &[LineMark]) -> bool {
    headers.iter().all(|m| {
        let before = &text.as_bytes()[..m.offset as usize];
        let line = memchr::memchr_iter(b'\n', before).count();
        let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
        (m.line as usize, m.line_start as usize) == (line, line_start)
    })
}

fn offset_u32(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

/// The tokens go to toml's parser in chunks of whole lines: cut only after a newline outside
/// any bracket, where in a valid file the parser is between expressions as at the start of a
/// file. A file with an error is read again in one piece, so that its errors are the ones toml
/// finds reading it whole.
fn document_in_chunks(text: &str, file: u32, chunk: usize) -> Result<Document<'_>, Vec<(Loc, String)>> {
    let source = Source::new(text);
    let mut builder = Builder::new(source, file);
    let mut errors: Vec<ParseError> = Vec::new();
    let mut tokens: Vec<Token> = Vec::with_capacity(chunk.min(text.len() / 2) + 64);
    let mut depth: i64 = 0;
    for token in source.lex() {
        // One match a token: this loop sees every token of the file.
        let cut = match token.kind() {
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => {
                depth += 1;
                false
            }
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                depth -= 1;
                false
            }
            TokenKind::Newline => depth == 0 && tokens.len() >= chunk,
            _ => false,
        };
        tokens.push(token);
        if cut {
            // The builder validates comments and newlines and limits nesting as toml's own
            // receivers (ValidateWhitespace, RecursionGuard) do, without their calls per event.
            toml_parser::parser::parse_document(&tokens, &mut builder, &mut errors);
            if !errors.is_empty() || !builder.errors.is_empty() {
                return document_in_chunks(text, file, usize::MAX);
            }
            tokens.clear();
        }
    }
    toml_parser::parser::parse_document(&tokens, &mut builder, &mut errors);
    if errors.is_empty() && builder.errors.is_empty() {
        let root = builder.take_entries(ROOT);
        let headers = std::mem::take(&mut builder.headers);
        return Ok(Document { root, headers });
    }
    errors.append(&mut builder.errors);
    let mut out: Vec<(Loc, String)> = errors
        .iter()
        .map(|e| {
            let offset = e.unexpected().map_or(0, |s| s.start());
            (Loc::new(file, offset), message(e))
        })
        .collect();
    out.dedup();
    Err(out)
}

/// The words toml's own error gives.
fn message(e: &ParseError) -> String {
    let mut m = e.description().to_string();
    if let Some(expected) = e.expected() {
        m.push_str(", expected ");
        if expected.is_empty() {
            m.push_str("nothing");
        }
        for (i, want) in expected.iter().enumerate() {
            if i != 0 {
                m.push_str(", ");
            }
            match want {
                Expected::Literal("\n") => m.push_str("newline"),
                Expected::Literal("`") => m.push_str("'`'"),
                Expected::Literal(s) if s.chars().all(|c| c.is_ascii_control()) => {
                    m.push_str(&format!("`{}`", s.escape_debug()))
                }
                Expected::Literal(s) => m.push_str(&format!("`{s}`")),
                Expected::Description(s) => m.push_str(s),
                _ => m.push_str("etc"),
            }
        }
    }
    m.trim().replace('\n', "; ")
}

/// Where a table-valued entry's table is while the file is read: in the builder's arena, so
/// that a later header or dotted key can reach into it.
#[derive(Clone)]
enum Link {
    Table(usize),
    /// `[[name]]`: its store in the builder.
    Tables(usize),
}

/// An array of tables being read. Only its last table can still be reached (a header or a
/// dotted key through its name goes into the last one), so a table's entries move here when
/// the next one starts, and its place in the arena is handed on to that one.
#[derive(Default)]
struct ArrayStore<'a> {
    /// The arena table being filled.
    last: usize,
    entries: Entries<'a>,
    /// By entry, as in [`Table`].
    links: Vec<Option<Link>>,
    tables: Vec<(Loc, u32, u32)>,
}

/// Past this many entries a table's keys are found through a hash index, not a scan.
const INDEXED: usize = 16;

#[derive(Default)]
struct Table<'a> {
    entries: Entries<'a>,
    /// By entry: the arena table a header or dotted key may still extend. Only as long as the
    /// last such entry (most tables have none).
    links: Vec<Option<Link>>,
    index: Option<HashMap<Cow<'a, str>, usize, BuildHasherDefault<Fnv>>>,
    /// Created by a header's path or a dotted key, not (yet) by a header of its own.
    implicit: bool,
    /// Created or extended by a dotted key.
    dotted: bool,
    inline: bool,
    /// Where its header starts, for a table of an array of tables.
    at: Loc,
}

impl<'a> Table<'a> {
    #[inline]
    fn find(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            // Keys are unique, so from the end: the last key pushed (`override`, under the
            // next `[[override]]`) is the one asked for most.
            None => self.entries.iter().rposition(|(k, _)| k == key),
        }
    }

    fn link(&self, i: usize) -> Option<&Link> {
        self.links.get(i).and_then(Option::as_ref)
    }

    fn push(&mut self, key: Cow<'a, str>, node: Node<'a>, link: Option<Link>) {
        let i = self.entries.len();
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), i);
        }
        self.entries.push((key, node));
        if link.is_some() {
            self.links.resize(i, None);
            self.links.push(link);
        }
        if self.index.is_none() && self.entries.len() > INDEXED {
            let index = self.entries.iter().enumerate().map(|(i, (k, _))| (k.clone(), i));
            self.index = Some(index.collect());
        }
    }
}

/// toml's name for a value's type, in its messages.
fn type_str(kind: &Kind) -> &'static str {
    match kind {
        Kind::Str(_) => "string",
        Kind::Int(..) => "integer",
        Kind::Float => "float",
        Kind::Bool(_) => "boolean",
        Kind::Datetime => "datetime",
        Kind::Array(_) | Kind::Tables(_) => "array",
        Kind::Table(_) => "table",
    }
}

/// A key's parts as read: the path, then the last part.
type Path<'a> = Vec<(Cow<'a, str>, Span)>;

enum Frame<'a> {
    Array(Node<'a>),
    /// An inline table: its arena index, offset, and the key its next value goes under.
    Inline(usize, Loc, Path<'a>),
}

struct Builder<'a> {
    source: Source<'a>,
    file: u32,
    tables: Vec<Table<'a>>,
    arrays: Vec<ArrayStore<'a>>,
    /// Bytes of the file no array of tables has made room for yet.
    unclaimed: usize,
    /// The table that key/value lines go into.
    current: usize,
    /// `[` or `[[` being read, with its offset.
    header: Option<(bool, usize)>,
    /// The key being read at the top level (a header's or a key/value line's); kept from line
    /// to line.
    keys: Path<'a>,
    /// The line's `=` was read: its value goes under `keys`.
    value_due: bool,
    open: Vec<Frame<'a>>,
    /// Arrays and inline tables open, as toml counts them for its depth limit.
    depth: u32,
    /// What this reading finds wrong (values, keys, tables), reported after the parser's own
    /// errors, as toml reports them.
    errors: Vec<ParseError>,
    /// The line being read: in a file without errors a `\n` is in a newline or a multi-line
    /// string, nowhere else.
    line: LineMark,
    headers: Vec<LineMark>,
}

const ROOT: usize = 0;

/// Bytes of a bare key: `A-Z a-z 0-9 _ -`.
const fn bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Bytes a basic string holds as they are: no escape, quote or control character.
const fn plain_basic(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f)
}

/// Bytes a literal string may hold.
const fn plain_literal(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != b'\'' && b != 0x7f)
}

/// The byte classes above as bits of one table: a lookup per byte, where the three tests cost
/// several compares each on the short keys and strings a policy holds.
const BARE: u8 = 1;
const PLAIN_BASIC: u8 = 2;
const PLAIN_LITERAL: u8 = 4;
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if bare(byte) {
            table[b] |= BARE;
        }
        if plain_basic(byte) {
            table[b] |= PLAIN_BASIC;
        }
        if plain_literal(byte) {
            table[b] |= PLAIN_LITERAL;
        }
        b += 1;
    }
    table
};

/// True when every byte of `text` is in `class`.
#[inline(always)]
fn all_in(text: &str, class: u8) -> bool {
    text.bytes().all(|b| CLASSES[b as usize] & class != 0)
}

/// The text of a key or a one-line string that needs no decoding (no escapes, nothing toml
/// would refuse), borrowed; `None` sends it through toml's decoder, which also words errors.
fn plain(text: &str, encoding: Option<Encoding>) -> Option<&str> {
    let (inner, ok) = match encoding {
        None => (text, !text.is_empty() && all_in(text, BARE)),
        Some(Encoding::BasicString) => {
            let inner = text.strip_prefix('"')?.strip_suffix('"')?;
            (inner, all_in(inner, PLAIN_BASIC))
        }
        Some(Encoding::LiteralString) => {
            let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
            (inner, all_in(inner, PLAIN_LITERAL))
        }
        Some(_) => return None,
    };
    ok.then_some(inner)
}

impl<'a> Builder<'a> {
    fn new(source: Source<'a>, file: u32) -> Self {
        Builder {
            source,
            file,
            tables: vec![Table::default()],
            arrays: Vec::new(),
            unclaimed: source.input().len(),
            current: ROOT,
            header: None,
            keys: Vec::new(),
            value_due: false,
            open: Vec::new(),
            depth: 0,
            errors: Vec::new(),
            line: LineMark::default(),
            headers: Vec::new(),
        }
    }

    fn loc(&self, offset: usize) -> Loc {
        Loc::new(self.file, offset)
    }

    fn new_table(&mut self, table: Table<'a>) -> usize {
        self.tables.push(table);
        self.tables.len() - 1
    }

    fn text(&self, span: Span) -> &'a str {
        self.source.input().get(span.start()..span.end()).unwrap_or("")
    }

    fn raw(&self, span: Span, encoding: Option<Encoding>) -> toml_parser::Raw<'a> {
        toml_parser::Raw::new_unchecked(self.text(span), encoding, span)
    }

    fn duplicate(&mut self, span: Span, old: Option<Loc>) {
        let mut e = ParseError::new("duplicate key").with_unexpected(span);
        if let Some(old) = old {
            let start = old.offset as usize;
            e = e.with_context(Span::new_unchecked(start, start));
        }
        self.errors.push(e);
    }

    /// The table a dotted path leads to from `table`, made where missing (toml's rules: through
    /// the last table of an array of tables, never into an inline table or a value).
    fn descend(
        &mut self,
        mut table: usize,
        path: &[(Cow<'a, str>, Span)],
        dotted: bool,
        in_inline: bool,
    ) -> Option<usize> {
        for (key, span) in path {
            let Some(i) = self.tables[table].find(key) else {
                let child = self.new_table(Table {
                    implicit: true,
                    dotted,
                    inline: in_inline,
                    ..Table::default()
                });
                let at = self.loc(span.start());
                let node = Node {
                    key: at,
                    at,
                    kind: Kind::Table(Vec::new()),
                };
                self.tables[table].push(key.clone(), node, Some(Link::Table(child)));
                table = child;
                continue;
            };
            table = match self.tables[table].link(i) {
                Some(Link::Tables(array)) if !in_inline => self.arrays[*array].last,
                Some(Link::Table(child)) => {
                    let child = *child;
                    let t = &mut self.tables[child];
                    if t.inline && !in_inline {
                        self.errors.push(
                            ParseError::new("cannot extend value of type inline table with a dotted key")
                                .with_unexpected(*span),
                        );
                        return None;
                    }
                    if dotted && t.implicit {
                        t.dotted = true;
                    }
                    if dotted && !t.implicit {
                        self.duplicate(*span, None);
                        return None;
                    }
                    child
                }
                _ => {
                    let old = &self.tables[table].entries[i].1;
                    let message = match &old.kind {
                        // A finished inline table, or a value.
                        Kind::Table(_) if in_inline => {
                            self.duplicate(*span, None);
                            return None;
                        }
                        Kind::Table(_) => "cannot extend value of type inline table with a dotted key".into(),
                        kind => format!("cannot extend value of type {} with a dotted key", type_str(kind)),
                    };
                    self.errors.push(ParseError::new(message).with_unexpected(*span));
                    return None;
                }
            };
        }
        Some(table)
    }

    /// `key = value` into the current table, or into the inline table being read.
    fn insert(&mut self, keys: &[(Cow<'a, str>, Span)], node: Node<'a>, link: Option<Link>) {
        let inline = match self.open.last() {
            Some(Frame::Inline(table, ..)) => Some(*table),
            _ => None,
        };
        let Some(((key, span), path)) = keys.split_last() else {
            return;
        };
        if path.len() as u32 >= MAX_DEPTH {
            self.errors.push(ParseError::new("recursion limit"));
            return;
        }
        let dotted = !path.is_empty();
        let start = inline.unwrap_or(self.current);
        // Most keys are not dotted: no path to walk.
        let table = if dotted {
            match self.descend(start, path, dotted, inline.is_some()) {
                Some(table) => table,
                None => return,
            }
        } else {
            start
        };
        let t = &self.tables[table];
        let mixed = match inline {
            Some(_) => t.dotted != dotted,
            None => dotted && !t.implicit,
        };
        if mixed {
            self.duplicate(*span, None);
            return;
        }
        if let Some(i) = t.find(key) {
            let old = t.entries[i].1.key;
            self.duplicate(*span, Some(old));
            return;
        }
        let node = Node {
            key: self.loc(span.start()),
            ..node
        };
        self.tables[table].push(key.clone(), node, link);
    }

    /// A finished value: into the array or inline table around it, or under the line's key.
    fn value(&mut self, node: Node<'a>) {
        match self.open.last_mut() {
            Some(Frame::Array(array)) => {
                if let Kind::Array(items) = &mut array.kind {
                    items.push(node);
                }
            }
            Some(Frame::Inline(_, _, keys)) => {
                let keys = std::mem::take(keys);
                self.insert(&keys, node, None);
            }
            None if self.value_due => {
                self.value_due = false;
                // The line's key buffer, lent and given back: one per file, not per line.
                let keys = std::mem::take(&mut self.keys);
                self.insert(&keys, node, None);
                self.keys = keys;
            }
            None => {}
        }
    }

    /// `[a.b]` or `[[a.b]]` read: the table key/value lines go into from here.
    fn open_header(&mut self, is_array: bool, at: usize) {
        let keys = std::mem::take(&mut self.keys);
        let table = self.header_table(&keys, is_array, self.loc(at));
        self.keys = keys;
        // A header in error: its lines go into a table nothing reaches.
        self.current = table.unwrap_or_else(|| self.new_table(Table::default()));
    }

    fn header_table(&mut self, keys: &[(Cow<'a, str>, Span)], is_array: bool, at: Loc) -> Option<usize> {
        let ((key, span), path) = keys.split_last()?;
        if path.len() as u32 >= MAX_DEPTH {
            self.errors.push(ParseError::new("recursion limit"));
            return None;
        }
        let parent = self.descend(ROOT, path, false, false)?;
        let key_at = self.loc(span.start());
        let Some(i) = self.tables[parent].find(key) else {
            let table = self.new_table(Table {
                at,
                ..Table::default()
            });
            let (kind, link) = if is_array {
                // Room for the rest of the file as tables of a few short lines each (an
                // `[[override]]` is about 70 bytes and three keys): no copy as the array grows.
                // The arrays of a file share the room of one.
                let rest = self.source.input().len().saturating_sub(at.offset as usize);
                let rest = rest.min(self.unclaimed);
                self.unclaimed -= rest;
                self.arrays.push(ArrayStore {
                    last: table,
                    entries: Vec::with_capacity(rest / 16),
                    tables: Vec::with_capacity(rest / 48),
                    ..ArrayStore::default()
                });
                (Kind::Array(Vec::new()), Link::Tables(self.arrays.len() - 1))
            } else {
                (Kind::Table(Vec::new()), Link::Table(table))
            };
            let node = Node {
                key: key_at,
                at,
                kind,
            };
            self.tables[parent].push(key.clone(), node, Some(link));
            return Some(table);
        };
        let old = self.tables[parent].entries[i].1.key;
        let (array, table) = match self.tables[parent].link(i) {
            Some(Link::Tables(array)) => (Some(*array), None),
            Some(Link::Table(t)) => (None, Some(*t)),
            None => (None, None),
        };
        if let Some(array) = array
            && is_array
        {
            // The last table's entries go to the array, and its place in the arena, its vector
            // emptied, is this one's: nothing reaches the last table any more.
            let table = self.arrays[array].last;
            let entries = self.end_table(array);
            let t = &mut self.tables[table];
            (t.at, t.entries) = (at, entries);
            return Some(table);
        }
        // Only a table so far implied by another header's path may be defined now.
        match table {
            Some(t)
                if !is_array && {
                    let c = &self.tables[t];
                    c.implicit && !c.dotted && !c.inline
                } =>
            {
                // Defined now: the key moves to this header, as toml places it.
                let node = &mut self.tables[parent].entries[i].1;
                node.key = key_at;
                node.at = at;
                self.tables[t].implicit = false;
                Some(t)
            }
            _ => {
                self.duplicate(*span, Some(old));
                None
            }
        }
    }

    fn mark_header(&mut self, span: Span) {
        let offset = offset_u32(span.start());
        self.headers.push(LineMark { offset, ..self.line });
    }

    /// A line ends or a header starts: what a broken line left half read goes.
    #[inline(always)]
    fn start_line(&mut self) {
        self.header = None;
        self.keys.clear();
        self.value_due = false;
        // Empty at almost every line's end: no call to drop nothing.
        if !self.open.is_empty() {
            self.open.clear();
        }
    }

    /// The last table of an array of tables goes into the array's store, leaving its arena table
    /// as a header makes one; its vector is given back empty, its room kept for the next table
    /// (an `[[override]]` holds three or four keys).
    fn end_table(&mut self, array: usize) -> Entries<'a> {
        let t = &mut self.tables[self.arrays[array].last];
        let mut entries = std::mem::take(&mut t.entries);
        let links = std::mem::take(&mut t.links);
        t.index = None;
        let at = t.at;
        let store = &mut self.arrays[array];
        let start = store.entries.len();
        if !links.is_empty() {
            store.links.resize(start, None);
            store.links.extend(links);
        }
        store.entries.append(&mut entries);
        let end = store.entries.len();
        store.tables.push((at, start as u32, end as u32));
        if entries.capacity() == 0 {
            entries.reserve(4);
        }
        entries
    }

    /// An arena table's entries as nodes, its tables' too, in the order of their keys in the
    /// file.
    fn take_entries(&mut self, table: usize) -> Entries<'a> {
        let Some(t) = self.tables.get_mut(table) else {
            return Vec::new();
        };
        let mut entries = std::mem::take(&mut t.entries);
        let links = std::mem::take(&mut t.links);
        self.take_linked(&mut entries, links);
        sort_by_place(&mut entries);
        entries
    }

    /// The tables of an array of tables, each one's entries in the order of their keys.
    fn take_array(&mut self, array: usize) -> TableArray<'a> {
        drop(self.end_table(array));
        let store = std::mem::take(&mut self.arrays[array]);
        let (mut entries, tables) = (store.entries, store.tables);
        self.take_linked(&mut entries, store.links);
        for &(_, start, end) in &tables {
            sort_by_place(&mut entries[start as usize..end as usize]);
        }
        TableArray { entries, tables }
    }

    /// The tables that entries link to, into the entries.
    fn take_linked(&mut self, entries: &mut [(Cow<'a, str>, Node<'a>)], links: Vec<Option<Link>>) {
        for (i, link) in links.into_iter().enumerate() {
            entries[i].1.kind = match link {
                None => continue,
                Some(Link::Table(child)) => Kind::Table(self.take_entries(child)),
                Some(Link::Tables(array)) => Kind::Tables(Box::new(self.take_array(array))),
            };
        }
    }

    fn open_nested(&mut self, span: Span, frame: Frame<'a>, errors: &mut dyn ErrorSink) -> bool {
        self.open.push(frame);
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            errors.report_error(
                ParseError::new("cannot recurse further; max recursion depth met").with_unexpected(span),
            );
            return false;
        }
        true
    }
}

impl<'a> EventReceiver for Builder<'a> {
    fn std_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.start_line();
        self.header = Some((false, span.start()));
        self.mark_header(span);
    }

    fn array_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.start_line();
        self.header = Some((true, span.start()));
        self.mark_header(span);
    }

    fn std_table_close(&mut self, _: Span, _: &mut dyn ErrorSink) {
        if let Some((is_array, at)) = self.header.take() {
            self.open_header(is_array, at);
        }
    }

    fn array_table_close(&mut self, span: Span, errors: &mut dyn ErrorSink) {
        self.std_table_close(span, errors);
    }

    fn simple_key(&mut self, span: Span, encoding: Option<Encoding>, _: &mut dyn ErrorSink) {
        let key = match plain(self.text(span), encoding) {
            Some(text) => Cow::Borrowed(text),
            None => {
                let mut key = Cow::Borrowed("");
                self.raw(span, encoding).decode_key(&mut key, &mut self.errors);
                key
            }
        };
        match self.open.last_mut() {
            Some(Frame::Inline(_, _, keys)) => keys.push((key, span)),
            Some(Frame::Array(_)) => {}
            None => self.keys.push((key, span)),
        }
    }

    fn key_val_sep(&mut self, _: Span, _: &mut dyn ErrorSink) {
        if self.open.is_empty() && self.header.is_none() {
            self.value_due = true;
        }
    }

    fn scalar(&mut self, span: Span, encoding: Option<Encoding>, _: &mut dyn ErrorSink) {
        let kind = match plain(self.text(span), encoding) {
            Some(text) if encoding.is_some() => Kind::Str(Cow::Borrowed(text)),
            _ => {
                if let Some(Encoding::MlBasicString | Encoding::MlLiteralString) = encoding {
                    let text = self.text(span).as_bytes();
                    if let Some(last) = memchr::memrchr(b'\n', text) {
                        self.line.line += memchr::memchr_iter(b'\n', text).count() as u32;
                        self.line.line_start = offset_u32(span.start() + last + 1);
                    }
                }
                let mut text = Cow::Borrowed("");
                match self
                    .raw(span, encoding)
                    .decode_scalar(&mut text, &mut self.errors)
                {
                    ScalarKind::String => Kind::Str(text),
                    ScalarKind::Boolean(b) => Kind::Bool(b),
                    ScalarKind::Float => Kind::Float,
                    ScalarKind::Integer(radix) => Kind::Int(text, radix.value()),
                    ScalarKind::DateTime => {
                        if let Err(e) = text.parse::<toml_datetime::Datetime>() {
                            self.errors
                                .push(ParseError::new(e.to_string()).with_unexpected(span));
                        }
                        Kind::Datetime
                    }
                }
            }
        };
        let at = self.loc(span.start());
        self.value(Node { key: at, at, kind });
    }

    fn comment(&mut self, span: Span, errors: &mut dyn ErrorSink) {
        self.raw(span, None).decode_comment(errors);
    }

    fn newline(&mut self, span: Span, errors: &mut dyn ErrorSink) {
        self.raw(span, None).decode_newline(errors);
        self.line.line += 1;
        self.line.line_start = offset_u32(span.end());
        // Arrays and (since TOML 1.1) inline tables span lines; a key or header does not.
        if self.open.is_empty() {
            self.start_line();
        }
    }

    fn array_open(&mut self, span: Span, errors: &mut dyn ErrorSink) -> bool {
        let at = self.loc(span.start());
        let array = Node {
            key: at,
            at,
            kind: Kind::Array(Vec::new()),
        };
        self.open_nested(span, Frame::Array(array), errors)
    }

    fn array_close(&mut self, _: Span, _: &mut dyn ErrorSink) {
        self.depth = self.depth.saturating_sub(1);
        if let Some(Frame::Array(array)) = self.open.pop() {
            self.value(array);
        }
    }

    fn inline_table_open(&mut self, span: Span, errors: &mut dyn ErrorSink) -> bool {
        let table = self.new_table(Table {
            inline: true,
            ..Table::default()
        });
        let at = self.loc(span.start());
        self.open_nested(span, Frame::Inline(table, at, Vec::new()), errors)
    }

    fn inline_table_close(&mut self, _: Span, _: &mut dyn ErrorSink) {
        self.depth = self.depth.saturating_sub(1);
        if let Some(Frame::Inline(table, at, _)) = self.open.pop() {
            // Finished: nothing can extend an inline table, so it leaves the arena now.
            let kind = Kind::Table(self.take_entries(table));
            self.value(Node { key: at, at, kind });
        }
    }
}

/// Entries in the order of their keys in the file (a table defined after a table under it has
/// its key moved to its own header).
fn sort_by_place(entries: &mut [(Cow<'_, str>, Node<'_>)]) {
    if !entries.is_sorted_by_key(|(_, n)| n.key.offset) {
        entries.sort_by_key(|(_, n)| n.key.offset);
    }
}

/// FNV-1a: 10,000 overrides' selectors are hashed at every boot, and none is chosen by an attacker
/// who could not simply edit the policy.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use toml::de::{DeTable, DeValue};

    /// toml's own document builder, as this crate used to read a file: the reference.
    fn toml_tree(text: &str) -> Result<Entries<'_>, (u32, String)> {
        DeTable::parse(text)
            .map(|t| toml_table(t.get_ref()))
            .map_err(|e| {
                let offset = e.span().map_or(0, |s| s.start) as u32;
                (offset, e.message().trim().replace('\n', "; "))
            })
    }

    fn toml_table<'a>(t: &DeTable<'a>) -> Entries<'a> {
        let mut entries: Entries<'a> = t
            .iter()
            .map(|(k, v)| {
                let mut node = toml_node(v.get_ref(), v.span().start);
                node.key = Loc::new(0, k.span().start);
                (k.get_ref().clone(), node)
            })
            .collect();
        entries.sort_by_key(|(_, n)| n.key.offset);
        entries
    }

    fn toml_node<'a>(v: &DeValue<'a>, offset: usize) -> Node<'a> {
        let at = Loc::new(0, offset);
        let kind = match v {
            DeValue::String(s) => Kind::Str(s.clone()),
            DeValue::Integer(i) => Kind::Int(Cow::Owned(i.as_str().to_string()), i.radix()),
            DeValue::Float(_) => Kind::Float,
            DeValue::Boolean(b) => Kind::Bool(*b),
            DeValue::Datetime(_) => Kind::Datetime,
            DeValue::Array(a) => {
                Kind::Array(a.iter().map(|e| toml_node(e.get_ref(), e.span().start)).collect())
            }
            DeValue::Table(t) => Kind::Table(toml_table(t)),
        };
        Node { key: at, at, kind }
    }

    /// The tree with each array of tables as an array of table nodes, as toml's tree has it.
    fn as_arrays(entries: Entries<'_>) -> Entries<'_> {
        entries.into_iter().map(|(k, n)| (k, node_as_arrays(n))).collect()
    }

    fn node_as_arrays(node: Node<'_>) -> Node<'_> {
        let kind = match node.kind {
            Kind::Table(t) => Kind::Table(as_arrays(t)),
            Kind::Tables(t) => Kind::Array(t.nodes().into_iter().map(node_as_arrays).collect()),
            Kind::Array(items) => Kind::Array(items.into_iter().map(node_as_arrays).collect()),
            kind => kind,
        };
        Node { kind, ..node }
    }

    /// The same tree as toml's to the byte offset, or errors where toml has one, the first
    /// being toml's, at the same place.
    fn reads_as_toml(text: &str) -> Result<(), String> {
        // Cut after every line the parser may be cut at, as a policy of thousands of lines is.
        let cut = document_in_chunks(text, 0, 1);
        let whole = document_in_chunks(text, 0, usize::MAX);
        if cut != whole {
            return Err(format!("{text:?}:\n  cut:   {cut:?}\n  whole: {whole:?}"));
        }
        if let Ok(ours) = &whole
            && !headers_agree(text, &ours.headers)
        {
            return Err(format!("{text:?}: headers' lines {:?}", ours.headers));
        }
        match (document(text, 0).map(|d| as_arrays(d.root)), toml_tree(text)) {
            (Ok(ours), Ok(theirs)) if ours == theirs => Ok(()),
            (Err(ours), Err(theirs)) if (ours[0].0.offset, &ours[0].1) == (theirs.0, &theirs.1) => Ok(()),
            (ours, theirs) => Err(format!("{text:?}:\n  ours:  {ours:?}\n  toml: {theirs:?}")),
        }
    }

    #[test]
    fn tricky_shapes_read_as_toml_reads_them() {
        let texts = [
            "",
            "\n\n# only a comment",
            "a = 1\nb = \"x\"\nc = 'y'\n",
            "a=1#c\nb=-7\nc=0\nd=\"\"\ne=-0\n",
            "[users]\nmemory_max = \"1G\"\n[[override]]\nuser = \"a\"\n[[override]]\nuser = \"b\"\n",
            "[trees.x]\nservice = \"a@.service\"\n[trees.y]\nslice = \"b.slice\"\n",
            "[a.b]\nc = 1\n[a]\nd = 2\n",
            "[x.a.b]\nk = 1\n[x.c]\n[x.a]\nj = 2\n",
            "[ a . \"b c\" ]  # header\n'k' = [1, [2, 3], \"x\",]\n",
            "x = [\n  1, # one\n  2,\n]\nw = true\nv = false\n  [a] # x\n\n [[b]]\r\n\t[[b]]",
            "[[a]]\n[[a]]\nk = 1\n[b]\n",
            "[[a]]\n[a.b]\nk = 1\n[[a]]\n[a.b]\n",
            "a.b = 1\na.c = 2\n",
            "a = { b = 1, c.d = [2, { e = 3 }] }\n",
            "t = 1979-05-27\nu = 1979-05-27T07:32:00Z\n",
            "f = 1.5\ng = inf\n",
            "h = 0x1F\no = 0o17\nb = 0b11\n",
            "u = 1_000\n",
            "p = +1\n",
            "s = \"a\\tb\\u00e9\"\n",
            "m = \"\"\"x\ny\"\"\"\nl = '''z'''\n",
            "m = \"\"\"\r\na\r\n\"\"\"\r\nl = '''\nb\n\n'''\n[t]\n[[u]]\n",
            "a = 1\r\nb = 2\r\n",
            "\u{feff}a = 1\n",
            "\"a\" = 1\n'b c' = 2\n",
            // Errors: duplicates and redefinitions of every kind, then syntax.
            "a = 1\na = 2\n",
            "[a]\n[a]\n",
            "[a.b]\n[a.b]\n",
            "a = 1\n[a.b]\n",
            "[[a]]\n[a]\n",
            "[a.b]\n[[a]]\n",
            "[a]\nb.c = 1\n[a.b]\n",
            "a = {b = 1}\na.c = 2\n",
            "a = {b = 1}\n[a.c]\n",
            "a = {b = {c = 1}, b.d = 2}\n",
            "a = [1]\n[[a]]\n",
            "a = [1]\na.b = 2\n",
            "[a]\nx = 1\n[b]\n[a]\n",
            "\"a\" = 1\na = 2\n",
            "a = [1\n",
            "a = 1 b = 2\n",
            "[a] b = 1\n",
            "[ [a] ]\n",
            "a = truex\n",
            "a = \"x\ny\"\n",
            "a = \"\u{1}\"\n",
            "z = 01\n",
            "t = 1979-13-45\n",
            "s = \"\\q\"\n",
            "memory_max: 1G\n",
            "a = \n",
            "[a\nb = 1\n",
        ];
        let wrong: Vec<String> = texts.iter().filter_map(|t| reads_as_toml(t).err()).collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_corpus_and_shipped_policy_reads_as_toml_reads_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut wrong = Vec::new();
        for p in [
            "packaging/policy.toml",
            "examples/devvm.toml",
            "tests/vm/policy.toml",
        ] {
            let text = std::fs::read_to_string(root.join(p)).unwrap();
            assert!(document(&text, 0).is_ok(), "{p}");
            wrong.extend(reads_as_toml(&text).err());
        }
        let mut files = 0;
        for entry in std::fs::read_dir(root.join("fuzz/corpus/policy")).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if let Ok(text) = String::from_utf8(bytes) {
                files += 1;
                wrong.extend(reads_as_toml(&text).err());
            }
        }
        assert!(files > 1000, "only {files} corpus files");
        assert!(wrong.is_empty(), "{} differ:\n{}", wrong.len(), wrong.join("\n"));
    }

    #[test]
    fn every_error_in_a_file_is_reported() {
        let text = "a = 1\nb = \nc = 2\na = 3\n[d\ne = \"\\q\"\nf = 01\n";
        let errors = document(text, 0).unwrap_err();
        let lines: Vec<usize> = errors
            .iter()
            .map(|(at, _)| text[..at.offset as usize].matches('\n').count() + 1)
            .collect();
        for line in [2, 4, 5, 6, 7] {
            assert!(lines.contains(&line), "no error on line {line}: {errors:?}");
        }
        assert!(errors.iter().any(|(_, m)| m == "duplicate key"), "{errors:?}");
    }

    #[test]
    fn a_wide_table_is_read_in_linear_time() {
        // Scanned for duplicates, 50,000 keys take 1.25 G string comparisons: minutes here.
        let text: String = (0..50_000).map(|i| format!("k{i} = {i}\n")).collect();
        let start = std::time::Instant::now();
        let root = document(&text, 0).unwrap().root;
        assert_eq!(root.len(), 50_000);
        let dup = format!("{text}k7 = 1\n");
        assert!(document(&dup, 0).is_err());
        assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
    }
}
