//! Text from users (process names, cgroup names) shown to other people: at a login, in the
//! journal. One sanitiser for whoever writes it and whoever shows it.

/// Replaces what could change how the text is displayed by `?`: control characters (terminal
/// escapes, newlines), Unicode format characters (category Cf: bidi overrides and isolates,
/// zero-width characters, the BOM, tags) and the line and paragraph separators.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || is_format(c) { '?' } else { c })
        .collect()
}

/// Unicode general category Cf (Unicode 15.1), plus U+2028 and U+2029 (Zl, Zp).
pub fn is_format(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_format_characters_become_question_marks() {
        assert_eq!(printable("stress-ng"), "stress-ng");
        assert_eq!(printable("a\u{1b}[2Jb\n\r\t\u{7f}\u{85}"), "a?[2Jb?????");
        // RLO turns "exe.txt" around on a terminal; LRI..PDI, ZWSP, ZWJ, BOM, a tag.
        assert_eq!(
            printable("evil\u{202e}txt.exe\u{2066}x\u{2069}\u{200b}\u{200d}\u{feff}\u{e0041}"),
            "evil?txt.exe?x?????"
        );
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{2067}', '\u{2068}', '\u{2028}', '\u{2029}',
            '\u{ad}',
        ] {
            assert_eq!(printable(&c.to_string()), "?", "{:04X}", c as u32);
        }
        // Letters of any script stay.
        assert_eq!(printable("café 名前 ñ"), "café 名前 ñ");
    }
}
