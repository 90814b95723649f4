//! The kinds of audit event and their outcomes.

/// Whether the operation an event records went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Success,
    /// A secret presented was wrong (a PIN, a code), or the code was unusable.
    Failure,
    /// A rule refused it before any secret was checked (lock, rate limit).
    Refused,
}

impl Outcome {
    /// The name in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Refused => "refused",
        }
    }

    /// Parses the name.
    pub fn parse(text: &str) -> Option<Outcome> {
        Some(match text {
            "success" => Outcome::Success,
            "failure" => Outcome::Failure,
            "refused" => Outcome::Refused,
            _ => return None,
        })
    }
}

macro_rules! kinds {
    ($($variant:ident = $name:literal, $outcome:ident, $doc:literal;)*) => {
        /// What an audit event records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $(#[doc = $doc] $variant,)*
        }

        impl EventKind {
            /// Every kind.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The name in exports and the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }

            /// Parses the name.
            pub fn parse(text: &str) -> Option<EventKind> {
                match text {
                    $($name => Some(EventKind::$variant),)*
                    _ => None,
                }
            }

            /// The outcome an event of this kind has.
            pub fn outcome(self) -> Outcome {
                match self {
                    $(EventKind::$variant => Outcome::$outcome,)*
                }
            }
        }
    };
}

kinds! {
    Registered = "registered", Success, "An account was registered.";
    PreRegistered = "pre_registered", Success, "An account was pre-registered, to be activated.";
    Imported = "imported", Success, "An account was created by a bulk import.";
    ActivationRequested = "activation_requested", Success, "An activation code was sent (SMS, email or letter).";
    ActivationCompleted = "activation_completed", Success, "An account was activated with its code and a new PIN.";
    LoginAccepted = "login_accepted", Success, "A PIN was right; a login code follows.";
    LoginWrongPin = "login_wrong_pin", Failure, "A PIN was wrong.";
    LoginUnknown = "login_unknown", Failure, "A login named no active account: recorded by the login's keyed hash, and with the account when it is pending activation or cancelled.";
    LoginLocked = "login_locked", Refused, "A login was refused: the account is locked.";
    CodeIssued = "code_issued", Success, "A code was issued (purpose, channel, masked destination).";
    CodeAccepted = "code_accepted", Success, "A code was accepted.";
    CodeWrong = "code_wrong", Failure, "A wrong code was presented.";
    CodeExpired = "code_expired", Failure, "A code past its lifetime was presented.";
    CodeSuperseded = "code_superseded", Failure, "A code replaced by a newer one was presented.";
    CodeExhausted = "code_exhausted", Failure, "A code out of attempts was presented.";
    CodeAlreadyUsed = "code_already_used", Failure, "A used code was presented again.";
    CodeLocked = "code_locked", Refused, "A code was presented for a locked account.";
    CodeWasCancelled = "code_was_cancelled", Failure, "A code its client had cancelled was presented.";
    CodeCancelled = "code_cancelled", Success, "A client cancelled its live account-less code (a destination verification).";
    CodeApprovedByClient = "code_approved_by_client", Success, "A client marked its live account-less code approved without the code (it verified the destination another way).";
    SignatureAuthorised = "signature_authorised", Success, "A signature of a document was authorised (its hash).";
    Locked = "locked", Success, "The account was locked (reason, by whom).";
    Unlocked = "unlocked", Success, "The account was unlocked.";
    PinChanged = "pin_changed", Success, "The citizen changed the PIN.";
    PinChangeRefused = "pin_change_refused", Failure, "A PIN change presented a wrong current PIN.";
    PinReset = "pin_reset", Success, "The PIN was reset by an operator.";
    RecoveryUnlocked = "recovery_unlocked", Success, "The account was unlocked after the citizen proved who they are elsewhere (method, reference).";
    RecoveryPinSet = "recovery_pin_set", Success, "A new PIN was set after the citizen proved who they are elsewhere (method, reference).";
    ContactChangeRequested = "contact_change_requested", Success, "A change of phone, email or direct-message handle was asked for.";
    ContactChanged = "contact_changed", Success, "A new phone, email or direct-message handle was confirmed.";
    ContactRemoved = "contact_removed", Success, "A phone, email, push device or direct-message handle was removed (masked).";
    LocaleChanged = "locale_changed", Success, "The language of the citizen's messages was changed.";
    PushDeviceSet = "push_device_set", Success, "A push device was registered.";
    Cancelled = "cancelled", Success, "The account was cancelled.";
    Erased = "erased", Success, "A cancelled account's record was erased, its audit retention over.";
    RateLimited = "rate_limited", Refused, "A limit refused a code for the account.";
    NoticeQueued = "notice_queued", Success, "A notice of a change was queued to the citizen.";
    ClientAdded = "client_added", Success, "A client (relying party) was added.";
    ClientRevoked = "client_revoked", Success, "A client was revoked.";
    ClientKeyRotated = "client_key_rotated", Success, "A client was given another key (the old ones keep working until revoked or expired).";
    ClientKeyRevoked = "client_key_revoked", Success, "One of a client's keys was revoked.";
    ClientUpdated = "client_updated", Success, "A client's scopes or policy changed.";
    ServiceAdded = "service_added", Success, "A client added a verification service (the Twilio Verify surface's configuration).";
    ServiceRemoved = "service_removed", Success, "A client removed one of its verification services.";
    KeyRotated = "key_rotated", Success, "A signing key was rotated.";
    KeyRetired = "key_retired", Success, "A signing key was retired.";
    BackupTaken = "backup_taken", Success, "A backup of the store was written.";
    RestorePerformed = "restore_performed", Success, "The store was restored from a backup.";
    Checkpoint = "checkpoint", Success, "The chain's head, signed.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_name_that_parses_back() {
        let mut names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventKind::ALL.len());
        assert_eq!(EventKind::parse("nothing"), None);
    }
}
