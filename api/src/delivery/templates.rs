//! The words of each message, in Portuguese and English. Short, and always
//! telling the citizen never to share the code. A signature code's message
//! names the document it approves (its name and a fingerprint of its hash),
//! so the citizen sees what they are about to sign.

use engine::{Document, Locale, Notice, Outgoing, Purpose, Timestamp};

/// A message in words, for every channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One short line for SMS and push.
    pub short: String,
    /// Email subject.
    pub subject: String,
    /// Email plain-text body.
    pub text: String,
    /// Email HTML body.
    pub html: String,
    /// A printed letter's body (activation by post).
    pub letter: String,
}

/// Renders `message` for `service` (the name citizens know the service by).
pub fn render(message: &Outgoing, service: &str, now: Timestamp) -> Rendered {
    if let Some(notice) = message.notice {
        return notice_message(message.locale, notice, service);
    }
    let code = message.code.expose();
    let validity = Validity::of(now.until(message.expires_at).as_secs());
    if let Some(document) = &message.document {
        return signature(message.locale, document, code, validity, service);
    }
    let expires = crate::wire::rfc3339(message.expires_at);
    let expires_day = &expires[..10];
    let (purpose_pt, purpose_en) = match message.purpose {
        Purpose::Login => ("autenticação", "sign-in"),
        Purpose::StepUp => ("confirmação", "confirmation"),
        Purpose::Activation => ("ativação", "activation"),
        Purpose::ContactChange => ("alteração de contacto", "contact change"),
        Purpose::Signature => ("assinatura", "signature"),
        Purpose::Destination => ("verificação", "verification"),
    };
    let readable = group(code);
    match message.locale {
        Locale::Pt => {
            let short = format!(
                "{service}: código de {purpose_pt} {code}. Válido {}. Nunca partilhe este código com ninguém.",
                validity.short(Locale::Pt)
            );
            let text = format!(
                "O seu código de {purpose_pt} é {code}.\n\nÉ válido durante {} e só pode ser usado uma vez.\nNunca partilhe este código com ninguém: os nossos serviços nunca o pedem.\n\n{service}\n",
                validity.long(Locale::Pt)
            );
            Rendered {
                subject: format!("{service}: código de {purpose_pt}"),
                html: html(&text, Some(code)),
                letter: format!(
                    "{service}\n\nCódigo de ativação: {readable}\nVálido até {expires_day}.\n\nPara ativar a sua conta, indique o seu número de identificação, a data de nascimento e este código.\nNunca partilhe este código com ninguém.\n"
                ),
                short,
                text,
            }
        }
        Locale::En => {
            let short = format!(
                "{service}: {purpose_en} code {code}. Valid {}. Never share this code with anyone.",
                validity.short(Locale::En)
            );
            let text = format!(
                "Your {purpose_en} code is {code}.\n\nIt is valid for {} and can be used once.\nNever share this code with anyone: we will never ask you for it.\n\n{service}\n",
                validity.long(Locale::En)
            );
            Rendered {
                subject: format!("{service}: {purpose_en} code"),
                html: html(&text, Some(code)),
                letter: format!(
                    "{service}\n\nActivation code: {readable}\nValid until {expires_day}.\n\nTo activate your account, enter your identification number, your date of birth and this code.\nNever share this code with anyone.\n"
                ),
                short,
                text,
            }
        }
    }
}

/// A notice of a change to the account: what changed, and what to do if
/// the citizen did not do it. No code, no link.
fn notice_message(locale: Locale, notice: Notice, service: &str) -> Rendered {
    let (what_pt, what_en) = match notice {
        Notice::PinChanged => ("O PIN da sua conta foi alterado.", "Your PIN was changed."),
        Notice::PinReset => (
            "O PIN da sua conta foi reposto por um operador.",
            "Your PIN was reset by an operator.",
        ),
        Notice::ContactChanged => (
            "Um contacto da sua conta (telemóvel, email ou mensagem direta) foi alterado.",
            "A contact on your account (mobile number, email or direct message) was changed.",
        ),
        Notice::ContactRemoved => (
            "Um contacto foi removido da sua conta.",
            "A contact was removed from your account.",
        ),
        Notice::PushDeviceSet => (
            "Uma aplicação foi registada para receber os seus códigos.",
            "An app was registered to receive your codes.",
        ),
        Notice::Locked => ("A sua conta foi bloqueada.", "Your account was locked."),
    };
    let (short, subject, text) = match locale {
        Locale::Pt => (
            format!("{service}: {what_pt} Se não foi você, contacte o apoio de imediato."),
            format!("{service}: alteração na sua conta"),
            format!(
                "{what_pt}\n\nSe foi você, não precisa de fazer nada.\nSe não foi você, contacte o apoio de imediato: alguém pode estar a usar a sua conta.\nNunca partilhe os seus códigos nem o seu PIN.\n\n{service}\n"
            ),
        ),
        Locale::En => (
            format!("{service}: {what_en} If this was not you, contact support at once."),
            format!("{service}: a change to your account"),
            format!(
                "{what_en}\n\nIf this was you, there is nothing to do.\nIf it was not, contact support at once: someone may be using your account.\nNever share your codes or your PIN.\n\n{service}\n"
            ),
        ),
    };
    Rendered {
        html: html(&text, None),
        letter: text.clone(),
        short,
        subject,
        text,
    }
}

/// A signature code's message: what is being signed, then the code.
fn signature(
    locale: Locale,
    document: &Document,
    code: &str,
    validity: Validity,
    service: &str,
) -> Rendered {
    let fingerprint = document.fingerprint();
    let hash = document.sha256_hex();
    // The SMS line keeps to 160 characters: the name gives way. The code
    // and the fingerprint come before the name, and the name's double
    // quotes become single ones, so no name can put a fake fingerprint or
    // code where the citizen reads the real ones.
    let short = |words: &dyn Fn(&str) -> String| {
        let room = 160usize.saturating_sub(words("").chars().count()).max(12);
        words(&document.short_name(room).replace('"', "'"))
    };
    match locale {
        Locale::Pt => {
            let text = format!(
                "Pediu para assinar este documento:\n\n{}\nSHA-256: {hash}\n(impressão digital {fingerprint})\n\nO código que autoriza esta assinatura, e só esta, é {code}.\nÉ válido durante {} e só pode ser usado uma vez.\nSe não reconhece o documento, não use o código.\nNunca partilhe este código com ninguém: os nossos serviços nunca o pedem.\n\n{service}\n",
                document.name(),
                validity.long(Locale::Pt)
            );
            let valid = validity.short(Locale::Pt);
            Rendered {
                short: short(&|name| {
                    format!(
                        "{service}: código {code} para assinar o documento {fingerprint} \"{name}\". Válido {valid}. Nunca o partilhe."
                    )
                }),
                subject: format!("{service}: código para assinar um documento"),
                html: html(&text, Some(code)),
                letter: text.clone(),
                text,
            }
        }
        Locale::En => {
            let text = format!(
                "You asked to sign this document:\n\n{}\nSHA-256: {hash}\n(fingerprint {fingerprint})\n\nThe code that authorises this signature, and only this one, is {code}.\nIt is valid for {} and can be used once.\nIf you do not recognise the document, do not use the code.\nNever share this code with anyone: we will never ask you for it.\n\n{service}\n",
                document.name(),
                validity.long(Locale::En)
            );
            let valid = validity.short(Locale::En);
            Rendered {
                short: short(&|name| {
                    format!(
                        "{service}: code {code} to sign document {fingerprint} \"{name}\". Valid {valid}. Never share it."
                    )
                }),
                subject: format!("{service}: code to sign a document"),
                html: html(&text, Some(code)),
                letter: text.clone(),
                text,
            }
        }
    }
}

/// How long a code stays valid, in the unit that reads naturally: seconds
/// under two minutes, minutes under two hours, hours under two days, then
/// days. Whole units are rounded down (with a few seconds' grace for the
/// time between issuing and sending), so a message never promises
/// noticeably more time than is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    Seconds(u64),
    Minutes(u64),
    Hours(u64),
    Days(u64),
}

impl Validity {
    fn of(seconds: u64) -> Validity {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 60 * MINUTE;
        const DAY: u64 = 24 * HOUR;
        // A message is sent a moment after its code is made.
        let graced = seconds + 5;
        if seconds < 2 * MINUTE {
            Validity::Seconds(seconds.max(1))
        } else if graced >= 2 * DAY {
            Validity::Days(graced / DAY)
        } else if graced >= 2 * HOUR {
            Validity::Hours(graced / HOUR)
        } else {
            Validity::Minutes(graced / MINUTE)
        }
    }

    /// For SMS and push: `90 s`, `5 min`, `24 h`, `30 dias`.
    fn short(self, locale: Locale) -> String {
        match (self, locale) {
            (Validity::Seconds(n), _) => format!("{n} s"),
            (Validity::Minutes(n), _) => format!("{n} min"),
            (Validity::Hours(n), _) => format!("{n} h"),
            (Validity::Days(n), Locale::Pt) => format!("{n} dias"),
            (Validity::Days(n), Locale::En) => format!("{n} days"),
        }
    }

    /// For email: `90 segundos`, `5 minutos`, `24 hours`.
    fn long(self, locale: Locale) -> String {
        match (self, locale) {
            (Validity::Seconds(n), Locale::Pt) => format!("{n} segundos"),
            (Validity::Seconds(n), Locale::En) => format!("{n} seconds"),
            (Validity::Minutes(n), Locale::Pt) => format!("{n} minutos"),
            (Validity::Minutes(n), Locale::En) => format!("{n} minutes"),
            (Validity::Hours(n), Locale::Pt) => format!("{n} horas"),
            (Validity::Hours(n), Locale::En) => format!("{n} hours"),
            (Validity::Days(n), Locale::Pt) => format!("{n} dias"),
            (Validity::Days(n), Locale::En) => format!("{n} days"),
        }
    }
}

/// `ABCDEFGHJK` → `ABCDE-FGHJK`, easier to copy from paper.
fn group(code: &str) -> String {
    if code.len() <= 6 {
        return code.to_owned();
    }
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

/// The email's HTML: the text escaped, in paragraphs, the code (if any) in large type.
fn html(text: &str, code: Option<&str>) -> String {
    let mut escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if let Some(code) = code.filter(|c| !c.is_empty()) {
        escaped = escaped.replace(
            code,
            &format!("<strong style=\"font-size:1.4em\">{code}</strong>"),
        );
    }
    let paragraphs: Vec<String> = escaped
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>")))
        .collect();
    format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\">{}</body></html>",
        paragraphs.concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{ChallengeId, Channel, Code};

    fn message(locale: Locale, purpose: Purpose, code: &str) -> Outgoing {
        Outgoing {
            id: test_message_id(),
            challenge_id: ChallengeId::parse("c", &"0".repeat(32)).unwrap(),
            purpose,
            channel: Channel::Sms,
            destination: "+351912345678".into(),
            code: Code::new(code),
            locale,
            expires_at: Timestamp(300_000),
            attempt: 1,
            document: None,
            notice: None,
        }
    }

    fn test_message_id() -> engine::MessageId {
        // Ids are opaque; any one will do for rendering.
        engine::MessageId::from_bytes([1; 16])
    }

    #[test]
    fn sms_texts_are_short_and_warn_against_sharing_in_both_languages() {
        let pt = render(
            &message(Locale::Pt, Purpose::Login, "123456"),
            "gov.pt",
            Timestamp(0),
        );
        assert!(pt.short.contains("123456") && pt.short.contains("Nunca partilhe"));
        assert!(pt.short.contains("5 min"));
        assert!(pt.short.chars().count() <= 160, "{}", pt.short);
        let en = render(
            &message(Locale::En, Purpose::StepUp, "123456"),
            "gov.pt",
            Timestamp(0),
        );
        assert!(en.short.contains("Never share"));
        assert!(en.short.chars().count() <= 160, "{}", en.short);
    }

    #[test]
    fn a_signature_code_names_the_document_and_its_fingerprint_in_both_languages() {
        let hash = "3a7f9c21".repeat(8);
        let name = format!("Contrato de arrendamento <{}>.pdf", "x".repeat(150));
        let document = Document::parse(&name, &hash, Some(2048)).unwrap();
        for locale in [Locale::Pt, Locale::En] {
            let mut m = message(locale, Purpose::Signature, "482913");
            m.document = Some(document.clone());
            let r = render(&m, "autenticacao.gov.pt", Timestamp(0));
            assert!(
                r.short.contains("482913") && r.short.contains("3a7f-9c21"),
                "{}",
                r.short
            );
            assert!(r.short.contains("Contrato de arrendamento"), "{}", r.short);
            let code_at = r.short.find("482913").unwrap();
            let name_at = r.short.find("Contrato").unwrap();
            assert!(
                code_at < name_at,
                "the code comes before the name: {}",
                r.short
            );
            assert!(
                r.short.chars().count() <= 160,
                "{} chars: {}",
                r.short.chars().count(),
                r.short
            );
            assert!(r.short.contains("partilhe") || r.short.contains("Never share"));
            assert!(
                r.text.contains(&name) && r.text.contains(&hash),
                "the email names it in full"
            );
            assert!(r.html.contains("&lt;xxxx"), "HTML escapes the name");
            assert!(!r.html.contains("<xxxx"));
        }
    }

    #[test]
    fn a_name_cannot_put_a_fake_fingerprint_or_code_before_the_real_ones() {
        let hash = "7fdfb262".repeat(8);
        let name = "a\" (0000-0000) com o código 000000. x\".pdf";
        let document = Document::parse(name, &hash, None).unwrap();
        let mut m = message(Locale::Pt, Purpose::Signature, "553656");
        m.document = Some(document);
        let r = render(&m, "otpd", Timestamp(0));
        let real_code = r.short.find("553656").unwrap();
        let real_fingerprint = r.short.find("7fdf-b262").unwrap();
        assert!(real_code < r.short.find("000000").unwrap(), "{}", r.short);
        assert!(
            real_fingerprint < r.short.find("0000-0000").unwrap(),
            "{}",
            r.short
        );
        assert_eq!(
            r.short.matches('"').count(),
            2,
            "the name's quotes are neutralised: {}",
            r.short
        );
    }

    #[test]
    fn long_lifetimes_read_in_hours_then_days_never_rounded_up() {
        let valid_for = |locale, minutes: u64| {
            let mut m = message(locale, Purpose::Activation, "123456");
            m.expires_at = Timestamp(minutes * 60_000);
            render(&m, "gov.pt", Timestamp(0))
        };
        let day = valid_for(Locale::Pt, 1440);
        assert!(day.short.contains("Válido 24 h."), "{}", day.short);
        assert!(day.text.contains("durante 24 horas"), "{}", day.text);
        assert!(!day.short.contains("1440"), "{}", day.short);
        let day = valid_for(Locale::En, 1440);
        assert!(day.short.contains("Valid 24 h."), "{}", day.short);
        assert!(day.text.contains("valid for 24 hours"), "{}", day.text);
        let month = valid_for(Locale::Pt, 30 * 1440);
        assert!(month.short.contains("Válido 30 dias."), "{}", month.short);
        assert!(valid_for(Locale::En, 30 * 1440).text.contains("30 days"));
        assert!(valid_for(Locale::Pt, 119).short.contains("119 min"));
        assert!(valid_for(Locale::Pt, 150).short.contains("Válido 2 h."));
        assert!(valid_for(Locale::Pt, 2879).short.contains("Válido 47 h."));
        assert!(valid_for(Locale::Pt, 2880).short.contains("Válido 2 dias."));
        assert!(valid_for(Locale::Pt, 2).short.contains("Válido 2 min."));
        let seconds = |locale, s: u64| {
            let mut m = message(locale, Purpose::Login, "123456");
            m.expires_at = Timestamp(s * 1_000);
            render(&m, "gov.pt", Timestamp(0))
        };
        assert!(seconds(Locale::Pt, 90).short.contains("Válido 90 s."));
        assert!(
            seconds(Locale::En, 90)
                .text
                .contains("valid for 90 seconds ")
        );
        assert!(
            seconds(Locale::Pt, 10)
                .text
                .contains("durante 10 segundos ")
        );
        assert!(
            seconds(Locale::Pt, 299).short.contains("Válido 5 min."),
            "a code sent a moment after it was made still reads its full lifetime"
        );
        assert!(seconds(Locale::Pt, 280).short.contains("Válido 4 min."));
    }

    #[test]
    fn a_notice_says_what_changed_and_what_to_do_and_carries_no_code() {
        for (locale, words) in [
            (Locale::Pt, "contacte o apoio"),
            (Locale::En, "contact support"),
        ] {
            for notice in [Notice::ContactChanged, Notice::ContactRemoved] {
                let mut m = message(locale, Purpose::Login, "");
                m.notice = Some(notice);
                let r = render(&m, "autenticacao.gov.pt", Timestamp(0));
                assert!(r.short.contains(words), "{}", r.short);
                assert!(r.short.chars().count() <= 160, "{}", r.short);
                assert!(
                    r.text.contains(words) && !r.html.contains("strong"),
                    "{}",
                    r.html
                );
            }
        }
    }

    #[test]
    fn letters_group_long_codes_and_give_the_expiry_date() {
        let r = render(
            &message(Locale::Pt, Purpose::Activation, "ABCDEFGHJK"),
            "SS",
            Timestamp(0),
        );
        assert!(r.letter.contains("ABCDE-FGHJK"));
        assert!(r.letter.contains("1970-01-01"));
    }

    #[test]
    fn html_bodies_escape_and_emphasise_the_code() {
        let r = render(
            &message(Locale::En, Purpose::Login, "123456"),
            "A & <B>",
            Timestamp(0),
        );
        assert!(r.html.contains("A &amp; &lt;B&gt;"));
        assert!(
            r.html
                .contains("<strong style=\"font-size:1.4em\">123456</strong>")
        );
    }
}
