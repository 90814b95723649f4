//! Pieces of the engine exposed for the benchmarks in `bench/` and nothing
//! else: not a stable API, hidden from the docs.
//!
//! Criterion benchmarks live in another crate, so the parts they time that
//! are not public (code generation, the code MAC, the record codec, the raw
//! store and its group commit) are reached through thin wrappers here rather
//! than by making the parts themselves public.

use crate::account::{Account, Status};
use crate::challenge::{Challenge, ChallengeState};
use crate::client::{Client, ClientId, ClientInfo, ClientPolicy, KeyId, KeyInfo, Scope, Scopes};
use crate::clock::Timestamp;
use crate::code::CodePolicy;
use crate::error::Result;
use crate::id::{AccountId, ChallengeId};
use crate::identity::{Email, Identity, Phone};
use crate::keys::{Keys, MacKey, Seal};
use crate::lockout::Lockout;
use crate::outbox::{DeadLetter, Message};
use crate::pin::{Argon2Params, PinHasher};
use crate::secret::{Code, CodeKey, Pin, PinHash};
use crate::store::codec;
use crate::store::sled::{SledStore, Writes};
use crate::store::{Durable, FlushStats, Store, StoreConfig};
use crate::terms::{Channel, DeliveryState, Locale, MessageId, Purpose};
use rand_chacha::ChaCha20Rng;

/// Draws a code as issuing does.
pub fn generate_code(policy: &CodePolicy, rng: &mut ChaCha20Rng) -> Code {
    policy.generate(rng)
}

/// The subkeys of a code key, as the engine holds them.
#[derive(Debug)]
pub struct CodeKeys(Keys);

impl CodeKeys {
    /// Derives the subkeys (HKDF), as opening the engine does.
    pub fn derive(key: &CodeKey) -> CodeKeys {
        CodeKeys(Keys::derive(key))
    }

    /// The keyed hash a code is stored and compared as.
    pub fn code_mac(&self, challenge: ChallengeId, normalised: &str) -> [u8; 32] {
        self.0
            .code_mac(MacKey::Derived, challenge, normalised, None)
            .0
    }
}

/// The engine's Argon2id hasher at chosen parameters.
#[derive(Debug)]
pub struct Pins(PinHasher);

impl Pins {
    /// A hasher at `params` (computing its dummy hash once).
    pub fn new(params: Argon2Params, rng: &mut ChaCha20Rng) -> Result<Pins> {
        PinHasher::new(params, rng).map(Pins)
    }

    /// Hashes `pin` with `salt`, as registration and PIN changes do.
    pub fn hash(&self, pin: &Pin, salt: [u8; 16]) -> Result<PinHash> {
        self.0.hash(pin, salt)
    }

    /// Checks `pin` against `hash`, as login does.
    pub fn verify(&self, pin: &Pin, hash: &PinHash) -> bool {
        self.0.verify(pin, hash)
    }
}

/// A store with nothing of the engine on top, to time sled and the group commit.
#[derive(Debug)]
pub struct RawStore(SledStore);

impl RawStore {
    /// Opens (or creates) a store.
    pub fn open(config: &StoreConfig) -> Result<RawStore> {
        SledStore::open(config).map(RawStore)
    }

    /// Writes one record into sled's log buffer and returns without any flush.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut writes = Writes::default();
        writes.insert(key, value.to_vec());
        self.0.apply_unflushed(writes)
    }

    /// Writes one record and flushes sled by itself, as one writer alone would.
    pub fn put_flushed(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(key, value)?;
        self.0.flush()
    }

    /// Writes one record and waits for the group commit to make it durable,
    /// as every engine operation does.
    pub fn put_durable(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut writes = Writes::default();
        writes.insert(key, value.to_vec());
        let ticket = self.0.write_raw(writes)?;
        Durable::new((), Some(ticket), self.0.commit()).wait()
    }

    /// The group commit's counters.
    pub fn flush_stats(&self) -> FlushStats {
        self.0.stats()
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.0.size_on_disk()
    }
}

/// The kinds of stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An account.
    Account,
    /// A challenge.
    Challenge,
    /// A queued outgoing message.
    Message,
    /// A message given up on.
    DeadLetter,
    /// A relying-party client.
    Client,
}

impl RecordKind {
    /// Every kind.
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Account,
        RecordKind::Challenge,
        RecordKind::Message,
        RecordKind::DeadLetter,
        RecordKind::Client,
    ];

    /// Its name in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Account => "account",
            RecordKind::Challenge => "challenge",
            RecordKind::Message => "message",
            RecordKind::DeadLetter => "dead_letter",
            RecordKind::Client => "client",
        }
    }
}

/// One typical record of each kind, as production writes them.
#[derive(Debug)]
pub struct Samples {
    account: Account,
    challenge: Challenge,
    message: Message,
    dead_letter: DeadLetter,
    client: Client,
}

/// A decoded record, kept only so the decode is not optimised away.
#[derive(Debug)]
pub struct Decoded(#[allow(dead_code)] DecodedRecord);

// Held only to be dropped: boxing the large variant would time an extra allocation.
#[derive(Debug)]
#[allow(dead_code, clippy::large_enum_variant)]
enum DecodedRecord {
    Account(Account),
    Challenge(Challenge),
    Message(Message),
    DeadLetter(DeadLetter),
    Client(Client),
}

impl Default for Samples {
    fn default() -> Self {
        Self::new()
    }
}

impl Samples {
    /// A citizen with a phone and an email, a live SMS step-up challenge with
    /// its queued message, a dead letter and a client.
    pub fn new() -> Samples {
        let account = sample_account();
        let challenge = Challenge {
            id: ChallengeId([7; 16]),
            account: account.id,
            purpose: Purpose::StepUp,
            channel: Channel::Sms,
            destination: "+351912345678".into(),
            mac: Keys::derive(&CodeKey::new([1; 32])).code_mac(
                MacKey::Derived,
                ChallengeId([7; 16]),
                "123456",
                None,
            ),
            document: None,
            mac_key: MacKey::Derived,
            created_at: Timestamp(1_795_392_000_000),
            expires_at: Timestamp(1_795_392_300_000),
            attempts: 0,
            max_attempts: 3,
            state: ChallengeState::Live,
            delivery: DeliveryState::Queued,
            message: Some(MessageId([8; 16])),
            locale: Locale::Pt,
            client: Some(ClientId([3; 8])),
        };
        let message = Message {
            id: MessageId([8; 16]),
            challenge: challenge.id,
            account: account.id,
            purpose: Purpose::StepUp,
            channel: Channel::Sms,
            destination: "+351912345678".into(),
            sealed_code: Keys::derive(&CodeKey::new([1; 32]))
                .seal(MessageId([8; 16]), &Code::new("123456")),
            seal: Seal::Aead,
            locale: Locale::Pt,
            expires_at: challenge.expires_at,
            created_at: challenge.created_at,
            attempts: 0,
            next_attempt_at: challenge.created_at,
            in_flight: false,
            notice: None,
        };
        let dead_letter = DeadLetter {
            id: MessageId([9; 16]),
            challenge_id: challenge.id,
            channel: Channel::Sms,
            attempts: 8,
            reason: "gateway answered 400: invalid destination".into(),
            failed_at: challenge.created_at,
        };
        let client = Client {
            info: ClientInfo {
                id: ClientId([3; 8]),
                name: "portal-financas".into(),
                scopes: Scopes::of(&Scope::ALL),
                policy: ClientPolicy::default(),
                test: false,
                keys: vec![KeyInfo {
                    id: KeyId([3; 8]),
                    created_at: Timestamp(1_795_392_000_000),
                    expires_at: None,
                    revoked_at: None,
                }],
                created_at: Timestamp(1_795_392_000_000),
                revoked_at: None,
            },
            secrets: vec![(KeyId([3; 8]), [4; 32])],
            services: Vec::new(),
        };
        Samples {
            account,
            challenge,
            message,
            dead_letter,
            client,
        }
    }

    /// Encodes the sample of `kind` as the store would.
    pub fn encode(&self, kind: RecordKind) -> Vec<u8> {
        match kind {
            RecordKind::Account => codec::encode_account(&self.account, Some(1_234_567)),
            RecordKind::Challenge => codec::encode_challenge(&self.challenge),
            RecordKind::Message => codec::encode_message(&self.message),
            RecordKind::DeadLetter => codec::encode_dead_letter(&self.dead_letter),
            RecordKind::Client => codec::encode_client(&self.client),
        }
    }

    /// Decodes a record of `kind` as recovery would.
    pub fn decode(kind: RecordKind, bytes: &[u8]) -> Result<Decoded> {
        Ok(Decoded(match kind {
            RecordKind::Account => DecodedRecord::Account(codec::decode_account(bytes)?),
            RecordKind::Challenge => DecodedRecord::Challenge(codec::decode_challenge(bytes)?),
            RecordKind::Message => DecodedRecord::Message(codec::decode_message(bytes)?),
            RecordKind::DeadLetter => DecodedRecord::DeadLetter(codec::decode_dead_letter(bytes)?),
            RecordKind::Client => DecodedRecord::Client(codec::decode_client(bytes)?),
        }))
    }
}

/// A typical active account: civil ID, Portuguese mobile, email, a PIN hash at
/// the default Argon2 cost (so the PHC string has its real length).
pub(crate) fn sample_account() -> Account {
    Account {
        id: AccountId([3; 16]),
        identity: Identity::CivilId("12345678".into()),
        phone: Phone::parse("+351912345678").ok(),
        email: Email::parse("ana.silva@example.pt").ok(),
        birth_date: None,
        postal_address: None,
        push_token: None,
        dm: None,
        locale: None,
        pin: Some(PinHash::from_phc_unchecked(
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             r0y8X9QaEgnQpT3nJk1kqFZB0W0t3l0m8S5b7VvXc2M"
                .into(),
        )),
        status: Status::Active,
        lockout: Lockout::default(),
        created_at: Timestamp(1_795_392_000_000),
        updated_at: Timestamp(1_795_392_000_000),
        current: crate::account::Current::None,
    }
}

/// The bytes one audit event adds to the store: its record (9-byte key),
/// linked to its account's previous event (the account's own pointer to
/// its newest event is rewritten in place, so adds nothing per event).
pub fn stored_audit_size(record: &crate::audit::AuditRecord) -> u64 {
    let link = record.event.account.map(|_| u64::MAX);
    (codec::encode_audit(record, link).len() + 9) as u64
}
