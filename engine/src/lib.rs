//! The otpd engine: accounts, PINs, one-time codes, lockout and storage, with no HTTP in it.
//!
//! [`Engine`] is the one entry point. Every operation that changes state
//! returns a [`Durable`]: the change is already visible in memory, and is on
//! disk once [`Durable::wait`] returns. An `Err` from the engine always means
//! nothing changed.

mod account;
pub mod audit;
mod challenge;
mod client;
mod clock;
pub mod cluster;
mod code;
mod config;
mod document;
mod engine;
mod error;
mod hex;
mod id;
mod idempotency;
mod identity;
mod index;
#[doc(hidden)]
pub mod internals;
mod keys;
mod limits;
mod lockout;
mod outbox;
mod pin;
mod queue;
mod secret;
mod store;
mod terms;
mod test_mode;

pub use account::{AccountState, AccountView};
pub use challenge::{Approval, ChallengeStatus, ChallengeStatusKind, Issued, Verification};
pub use client::{
    ApiKey, ChannelSet, ClientId, ClientInfo, ClientPolicy, KeyId, KeyInfo, PurposeSet, Scope,
    Scopes, Service, ServiceId,
};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use code::{Alphabet, CodePolicies, CodePolicy};
pub use config::{AuditPolicy, EngineConfig, ResendCooldown};
pub use document::Document;
pub use engine::{
    ActivationTarget, ClientUpdate, ClusterCounts, Contact, ContactChangeStart, ContactKind,
    ContactRemoval, Destination, DestinationCheck, DestinationRequest, DestinationStatus,
    DestinationTarget, Ending, Engine, ImportAccount, ImportState, LoginId, LoginOutcome,
    MAX_EVENTS_PER_READ, MAX_LIVE_KEYS, MAX_SERVICES, Migration, NewAccount, NewClient, NewKey,
    PinChange, PreRegistration, Recovery, RecoveryMethod, Stats, Sweeper, check_cluster,
    os_seeded_rng, seeded_rng,
};
pub use error::{EngineError, Result};
pub use id::{AccountId, ChallengeId};
pub use idempotency::{Claim, IdempotencyPolicy, MAX_KEY_LENGTH, Remembered, Taken, is_valid_key};
pub use identity::{
    BirthDate, DmHandle, DmPolicy, Email, Identity, IdentityKind, Phone, PostalAddress, PushToken,
    calling_code,
};
pub use limits::{
    GlobalLimit, IssueLimitsConfig, KeyedLimit, Limited, Rate, SharedBuckets, SmsConversion,
    Subject,
};
pub use lockout::{Event, Lock, LockMode, LockReason, Lockout, LockoutPolicy, Transition};
pub use outbox::{DeadLetter, Notice, NoticePolicy, OutboxPolicy, Outgoing, SendResult};
pub use pin::{Argon2Params, PinPolicy, hash_pin_phc};
pub use secret::{Code, CodeKey, Pin, PinHash};
pub use store::memory::MemoryStore;
pub use store::{
    BACKUP_FILE, BackupSummary, Durable, DurableWait, FlushStats, StoreConfig,
    in_use as store_in_use, restore as restore_backup, verify as verify_backup,
};
pub use terms::{Channel, DeliveryState, Locale, MessageId, Purpose};
pub use test_mode::TestMode;

/// The RNG the engine draws ids, salts and codes from.
pub use rand_chacha::ChaCha20Rng;
