//! `Rne::parse` on any text: it never panics, and it accepts exactly the codes an independent
//! reading of the rule accepts (7 digits, then the letter of their value modulo 23 in
//! `ABCDEFGHJKLMNPRSTUVWXYZ`, any case), giving them back in upper case.

#![no_main]

use bcdi_shared::domain::Rne;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let parsed = Rne::parse(input);
    match (parsed, expected(input)) {
        (Ok(rne), Some(code)) => {
            assert_eq!(rne.as_str(), code);
            // Parsing what it gives back gives the same code.
            assert_eq!(Rne::parse(rne.as_str()).map(|again| again == rne), Ok(true));
        }
        (Err(_), None) => {}
        (parsed, expected) => panic!("{input:?}: parsed {parsed:?}, expected {expected:?}"),
    }
});

/// The rule, read another way: digit by digit, modulo 23 as it goes.
fn expected(input: &str) -> Option<String> {
    let chars: Vec<char> = input.chars().collect();
    if chars.len() != 8 {
        return None;
    }
    let mut remainder = 0u32;
    for c in &chars[..7] {
        remainder = (remainder * 10 + c.to_digit(10).filter(|_| c.is_ascii_digit())?) % 23;
    }
    let letter = "ABCDEFGHJKLMNPRSTUVWXYZ".chars().nth(remainder as usize)?;
    (chars[7].to_ascii_uppercase() == letter).then(|| input.to_ascii_uppercase())
}
