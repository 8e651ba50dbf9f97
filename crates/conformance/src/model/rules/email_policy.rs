//! The email identity policy: the shape of an address, the invisible characters it refuses,
//! the form it is stored in and the key two addresses collide on.

use super::{Rule, invalid};
use credo_ports::validate::MAX_EMAIL_LEN;
use unicode_normalization::UnicodeNormalization;

/// Longest local part of an email (before the `@`), in bytes: RFC 5321 §4.5.3.1.1, as
/// documented on `credo_ports::validate::email` ("a 1..=64 byte local part").
const MAX_LOCAL_PART_LEN: usize = 64;

/// Format characters (general category `Cf`), as ranges of code points (UnicodeData.txt;
/// unchanged from Unicode 15.0 to 18.0).
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Default-ignorable code points (property `Default_Ignorable_Code_Point`,
/// DerivedCoreProperties.txt): soft hyphen, combining grapheme joiner, Hangul fillers, Khmer
/// inherent vowels, Mongolian variation selectors, zero-width spaces and joiners, bidi
/// controls, invisible operators, variation selectors, byte-order mark, tags and the
/// reserved blocks around them.
const DEFAULT_IGNORABLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// A character that renders as nothing, so that two addresses looking identical could
/// register as two users: a format character or a default-ignorable code point.
pub(crate) fn invisible(c: char) -> bool {
    let cp = u32::from(c);
    FORMAT_CHARACTERS
        .iter()
        .chain(DEFAULT_IGNORABLE)
        .any(|&(first, last)| first <= cp && cp <= last)
}

/// The form an email is stored in: surrounding whitespace removed, then composed (NFC); case
/// kept.
pub(crate) fn stored_email(value: &str) -> String {
    value.trim().nfc().collect()
}

/// A plausible email, judged in its stored form ([`stored_email`]): not empty, at most
/// [`MAX_EMAIL_LEN`] bytes, no whitespace, control or [`invisible`] character, exactly one
/// `@` with a local part of 1 to 64 bytes before it, and after it a domain with at least one
/// dot and no empty label.
pub(crate) fn email(value: &str) -> Rule {
    let e = stored_email(value);
    if e.is_empty() {
        return invalid("email", "empty");
    }
    if e.len() > MAX_EMAIL_LEN {
        return invalid("email", format!("more than {MAX_EMAIL_LEN} bytes"));
    }
    for c in e.chars() {
        if c.is_whitespace() || c.is_control() {
            return invalid("email", format!("whitespace or control character {c:?}"));
        }
        if invisible(c) {
            return invalid("email", format!("invisible character {c:?}"));
        }
    }
    let at_signs = e.chars().filter(|&c| c == '@').count();
    if at_signs != 1 {
        return invalid("email", format!("{at_signs} '@' instead of one"));
    }
    let (local, domain) = e.split_once('@').expect("one '@'");
    if local.is_empty() || local.len() > MAX_LOCAL_PART_LEN {
        return invalid("email", "local part must be 1..=64 bytes");
    }
    if !domain.contains('.') {
        return invalid("email", "domain without a dot");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return invalid("email", "domain with an empty label");
        }
    }
    Ok(())
}

/// At most this many rounds of [`email_key_round`]. The policy asks for a fixed point; the
/// bound only guards the loop (every code point settles after one round, see the tests).
pub(super) const EMAIL_KEY_ROUNDS: usize = 16;

/// The key two emails are compared by (uniqueness per tenant, `find_by_email`): the trimmed
/// email put through [`email_key_round`] until it no longer changes, so that the key of a key
/// is itself.
pub(crate) fn email_key(value: &str) -> String {
    let mut key = value.trim().to_string();
    for _ in 0..EMAIL_KEY_ROUNDS {
        let next = email_key_round(&key);
        if next == key {
            break;
        }
        key = next;
    }
    key
}

/// One round of the email key, in the policy's order:
/// 1. compatibility normalization (NFKC: full-width `Ａ` is `A`, `ﬁ` is `fi`);
/// 2. lower case, character by character (so `Σ` is always `σ`, wherever it stands), and
///    the final sigma `ς` folded into `σ`;
/// 3. NFKC again (lower-casing can leave a string that is not normalized);
/// 4. surrounding whitespace removed (normalization can turn a character into a space).
pub(super) fn email_key_round(value: &str) -> String {
    let compatible: String = value.nfkc().collect();
    let mut lowered = String::new();
    for c in compatible.chars() {
        for l in c.to_lowercase() {
            lowered.push(if l == 'ς' { 'σ' } else { l });
        }
    }
    let renormalized: String = lowered.nfkc().collect();
    renormalized.trim().to_string()
}
