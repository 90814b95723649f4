//! Stored records: versioned types apart from the domain, and the one place they are (de)coded.
//!
//! Each record is a bincode-encoded enum whose variant is its version, so a
//! later version can be added without rewriting old data. Decoding trusts the
//! shapes our own encoder wrote; anything else is reported as corruption.
//!
//! One file per record kind; this module holds the bincode configuration
//! shared by all of them and the tests that cover several kinds at once.

mod account;
mod audit;
mod challenge;
mod client;
mod idempotency;
mod outbox;

use bincode::{Decode, Encode};

pub(crate) use account::{account_audit_newest, decode_account, encode_account};
pub(crate) use audit::{decode_audit_block, encode_audit, encode_audit_block};
pub(crate) use challenge::{decode_challenge, encode_challenge};
pub(crate) use client::{decode_client, encode_client};
pub(crate) use idempotency::{decode_idempotency, encode_idempotency};
pub(crate) use outbox::{decode_dead_letter, decode_message, encode_dead_letter, encode_message};

use crate::error::{EngineError, Result};

const CONFIG: bincode::config::Configuration = bincode::config::standard();

fn encode<T: Encode>(record: &T) -> Vec<u8> {
    // Encoding plain owned data into a Vec cannot fail.
    bincode::encode_to_vec(record, CONFIG).unwrap_or_default()
}

fn decode<T: Decode<()>>(bytes: &[u8], what: &str) -> Result<T> {
    match bincode::decode_from_slice::<T, _>(bytes, CONFIG) {
        Ok((value, read)) if read == bytes.len() => Ok(value),
        Ok(_) => Err(EngineError::Corrupt(format!(
            "{what} record has trailing bytes"
        ))),
        Err(e) => Err(EngineError::Corrupt(format!("{what} record: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::account::*;
    use super::challenge::*;
    use super::client::*;
    use super::idempotency::*;
    use super::outbox::*;
    use super::*;
    use crate::account::{Account, Status};
    use crate::challenge::{Challenge, ChallengeState};
    use crate::client::{
        ChannelSet, Client, ClientId, ClientInfo, ClientPolicy, KeyId, KeyInfo, PurposeSet, Scopes,
    };
    use crate::clock::Timestamp;
    use crate::document::Document;
    use crate::error::EngineError;
    use crate::id::{AccountId, ChallengeId};
    use crate::idempotency::{IdempotencyRecord, Remembered};
    use crate::identity::{BirthDate, DmHandle, Email, Identity, Phone, PostalAddress, PushToken};
    use crate::keys::{MacKey, Seal};
    use crate::limits::Rate;
    use crate::lockout::{Lock, LockReason, Lockout};

    use crate::secret::{CodeMac, PinHash};
    use crate::terms::{Channel, DeliveryState, Locale, MessageId, Purpose};

    fn sample_account() -> Account {
        Account {
            id: AccountId([3; 16]),
            identity: Identity::Passport {
                country: "BR".into(),
                number: "AB123456".into(),
            },
            phone: Some(Phone::parse("+5511912345678").unwrap()),
            email: Some(Email::parse("ana@example.com").unwrap()),
            birth_date: Some(BirthDate::from_parts(1990, 5, 17)),
            postal_address: Some(PostalAddress::parse("Rua A 1\nLisboa").unwrap()),
            push_token: Some(PushToken::parse("token-0123456789abcdef").unwrap()),
            dm: Some(Box::new(
                DmHandle::from_parts("mastodon", "ana@social.example").unwrap(),
            )),
            locale: Some(Locale::En),
            pin: Some(PinHash::from_phc_unchecked(
                "$argon2id$v=19$m=64,t=1,p=1$x$y".into(),
            )),
            status: Status::Active,
            lockout: Lockout {
                pin_failures: 2,
                code_failures: 1,
                lockouts: 1,
                lock: Some(Box::new(Lock {
                    reason: LockReason::Administrative("review".into()),
                    since: Timestamp(5),
                    until: Some(Timestamp(9)),
                })),
            },
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            current: crate::account::Current::None,
        }
    }

    #[test]
    fn accounts_round_trip() {
        let account = sample_account();
        for newest in [None, Some(0), Some(7), Some(u64::MAX)] {
            let bytes = encode_account(&account, newest);
            let back = decode_account(&bytes).unwrap();
            assert_eq!(format!("{account:?}"), format!("{back:?}"));
            assert_eq!(back.pin, account.pin);
            assert_eq!(account_audit_newest(&bytes).unwrap(), newest);
        }
    }

    #[test]
    fn an_accounts_newest_event_reads_from_every_version() {
        let mut account = sample_account();
        let v3 = encode_account(&account, Some(300));
        assert_eq!(v3[0], 2, "V3 is variant 2");
        assert_eq!(account_audit_newest(&v3).unwrap(), Some(300));
        let v2 = encode_account(&account, None);
        assert_eq!(v2[0], 1);
        assert_eq!(account_audit_newest(&v2).unwrap(), None);
        // Whatever the V2 record's first bytes after the version look like
        // (here an id starting 0, 1 and 0xff), it holds no event number.
        for first in [0u8, 1, 0xff] {
            account.id.0[0] = first;
            let DbAccount::V2(v2) =
                decode::<DbAccount>(&encode_account(&account, None), "account").unwrap()
            else {
                panic!("written as V2");
            };
            assert_eq!(
                account_audit_newest(&encode(&DbAccount::V2(v2))).unwrap(),
                None
            );
            let v1 = encode(&DbAccount::V1(
                match decode::<DbAccount>(&encode_account(&account, None), "account").unwrap() {
                    DbAccount::V2(v2) => v2.base,
                    _ => unreachable!(),
                },
            ));
            assert_eq!(account_audit_newest(&v1).unwrap(), None);
        }
        assert!(account_audit_newest(&[9, 0]).is_err(), "an unknown version");
        assert!(account_audit_newest(&[]).is_err());
    }

    #[test]
    fn challenges_round_trip() {
        let c = Challenge {
            id: ChallengeId([1; 16]),
            account: AccountId([2; 16]),
            purpose: Purpose::Activation,
            channel: Channel::Letter,
            destination: "Rua A 1".into(),
            mac: CodeMac([4; 32]),
            mac_key: MacKey::Derived,
            document: Some(Box::new(Document::from_parts(
                "contrato.pdf".into(),
                [8; 32],
                Some(1024),
            ))),
            created_at: Timestamp(10),
            expires_at: Timestamp(20),
            attempts: 2,
            max_attempts: 5,
            state: ChallengeState::Superseded,
            delivery: DeliveryState::Queued,
            message: Some(MessageId([5; 16])),
            locale: Locale::En,
            client: Some(ClientId([7; 8])),
        };
        let back = decode_challenge(&encode_challenge(&c)).unwrap();
        assert_eq!(format!("{c:?}"), format!("{back:?}"));
        assert_eq!(back.mac.0, [4; 32]);
    }

    #[test]
    fn version_1_challenges_still_decode_as_already_sent() {
        let v1 = DbChallenge::V1(DbChallengeV1 {
            id: [1; 16],
            account: [2; 16],
            purpose: 0,
            channel: 0,
            destination: "+351912345678".into(),
            mac: [3; 32],
            created_at: 1,
            expires_at: 2,
            attempts: 0,
            max_attempts: 3,
            state: 0,
        });
        let c = decode_challenge(&encode(&v1)).unwrap();
        assert_eq!(c.delivery, DeliveryState::Sent);
        assert_eq!(c.message, None);
        assert_eq!(c.mac_key, MacKey::Root, "made before keys had purposes");
    }

    #[test]
    fn challenges_and_messages_record_which_key_and_seal_they_use() {
        let mut c = decode_challenge(&encode(&DbChallenge::V1(DbChallengeV1 {
            id: [1; 16],
            account: [2; 16],
            purpose: 1,
            channel: 0,
            destination: "+351912345678".into(),
            mac: [3; 32],
            created_at: 1,
            expires_at: 2,
            attempts: 0,
            max_attempts: 3,
            state: 0,
        })))
        .unwrap();
        c.mac_key = MacKey::Derived;
        let bytes = encode_challenge(&c);
        assert_eq!(bytes[0], 3, "written as V4");
        assert_eq!(decode_challenge(&bytes).unwrap().mac_key, MacKey::Derived);
        let v1 = DbMessage::V1(DbMessageV1 {
            id: [1; 16],
            challenge: [2; 16],
            account: [3; 16],
            purpose: 1,
            channel: 0,
            destination: "+351912345678".into(),
            sealed_code: vec![9; 6],
            locale: 0,
            expires_at: 2,
            created_at: 1,
            attempts: 0,
            next_attempt_at: 1,
        });
        let mut m = decode_message(&encode(&v1)).unwrap();
        assert_eq!(m.seal, Seal::Pad, "V1 messages were sealed with the pad");
        m.seal = Seal::Aead;
        let bytes = encode_message(&m);
        assert_eq!(bytes[0], 2, "written as V3");
        assert_eq!(decode_message(&bytes).unwrap().seal, Seal::Aead);
        assert_eq!(decode_message(&bytes).unwrap().notice, None);
        m.notice = Some(crate::outbox::Notice::ContactChanged);
        let notice = decode_message(&encode_message(&m)).unwrap();
        assert_eq!(notice.notice, Some(crate::outbox::Notice::ContactChanged));
    }

    #[test]
    fn damaged_records_are_reported_as_corrupt() {
        let bytes = encode_account(&sample_account(), Some(5));
        for damaged in [&bytes[..bytes.len() / 2], &[0xff, 0xff, 0xff][..], &[][..]] {
            assert!(matches!(
                decode_account(damaged),
                Err(EngineError::Corrupt(_))
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode_account(&longer),
            Err(EngineError::Corrupt(_))
        ));
    }

    #[test]
    fn idempotency_records_round_trip_with_and_without_an_answer() {
        let mut record = IdempotencyRecord {
            client: "portal".into(),
            key: "order-42".into(),
            remembered: Remembered {
                fingerprint: [7; 32],
                created_at: Timestamp(5),
                answer: None,
            },
        };
        let bytes = encode_idempotency(&record);
        assert_eq!(bytes[0], 0, "V1 is variant 0");
        assert_eq!(decode_idempotency(&bytes).unwrap(), record);
        record.remembered.answer = Some(std::sync::Arc::from(&b"\x01\x00\xc9{}"[..]));
        assert_eq!(
            decode_idempotency(&encode_idempotency(&record)).unwrap(),
            record
        );
        record.key = String::new();
        assert!(matches!(
            decode_idempotency(&encode_idempotency(&record)),
            Err(EngineError::Corrupt(_))
        ));
    }

    #[test]
    fn version_3_challenges_still_decode_and_belong_to_no_client() {
        let mut c = decode_challenge(&encode(&DbChallenge::V1(DbChallengeV1 {
            id: [1; 16],
            account: [2; 16],
            purpose: 0,
            channel: 0,
            destination: "+351912345678".into(),
            mac: [3; 32],
            created_at: 1,
            expires_at: 2,
            attempts: 0,
            max_attempts: 3,
            state: 0,
        })))
        .unwrap();
        c.client = Some(ClientId([9; 8]));
        let v3 = encode(&DbChallenge::V3(challenge_v3(&c)));
        assert_eq!(v3[0], 2);
        assert_eq!(decode_challenge(&v3).unwrap().client, None);
        let v4 = encode_challenge(&c);
        assert_eq!(
            decode_challenge(&v4).unwrap().client,
            Some(ClientId([9; 8]))
        );
        c.client = None;
        assert_eq!(
            decode_challenge(&encode_challenge(&c)).unwrap().client,
            None
        );
    }

    #[test]
    fn version_1_clients_decode_with_one_key_whose_id_is_theirs() {
        let v1 = DbClient::V1(DbClientV1 {
            id: [3; 8],
            name: "portal".into(),
            secret_hash: [4; 32],
            scopes: Scopes::of(&[crate::client::Scope::Auth]).0,
            created_at: 10,
            revoked_at: None,
        });
        let client = decode_client(&encode(&v1)).unwrap();
        assert_eq!(client.info.id, ClientId([3; 8]));
        assert_eq!(client.info.policy, ClientPolicy::default());
        assert!(!client.info.test);
        assert_eq!(client.info.keys.len(), 1);
        assert_eq!(client.info.keys[0].id, KeyId([3; 8]));
        assert_eq!(client.info.keys[0].created_at, Timestamp(10));
        assert_eq!(client.secrets, vec![(KeyId([3; 8]), [4; 32])]);
        let bytes = encode_client(&client);
        assert_eq!(bytes[0], 1, "written as V2");
        let again = decode_client(&bytes).unwrap();
        assert_eq!(again.info, client.info);
        assert_eq!(again.secrets, client.secrets);
    }

    #[test]
    fn clients_round_trip_with_their_keys_and_policy() {
        let client = Client {
            info: ClientInfo {
                id: ClientId([1; 8]),
                name: "fe-dev".into(),
                scopes: Scopes::of(&[crate::client::Scope::Auth]),
                policy: ClientPolicy {
                    purposes: Some(PurposeSet::of(&[Purpose::Login])),
                    channels: Some(ChannelSet::of(&[Channel::Sms, Channel::Email])),
                    issue_rate: Some(Rate::per_minute(30)),
                },
                test: true,
                keys: vec![
                    KeyInfo {
                        id: KeyId([1; 8]),
                        created_at: Timestamp(1),
                        expires_at: Some(Timestamp(5)),
                        revoked_at: Some(Timestamp(3)),
                    },
                    KeyInfo {
                        id: KeyId([2; 8]),
                        created_at: Timestamp(2),
                        expires_at: None,
                        revoked_at: None,
                    },
                ],
                created_at: Timestamp(1),
                revoked_at: None,
            },
            secrets: vec![(KeyId([1; 8]), [5; 32]), (KeyId([2; 8]), [6; 32])],
            services: vec![crate::client::Service {
                id: crate::client::ServiceId([7; 16]),
                friendly_name: "Loja".into(),
                code_length: 6,
                created_at: Timestamp(1_795_392_000_000),
            }],
        };
        let back = decode_client(&encode_client(&client)).unwrap();
        assert_eq!(back.info, client.info);
        assert_eq!(back.secrets, client.secrets);
        assert_eq!(back.services, client.services);
    }

    #[test]
    fn records_start_with_their_version() {
        assert_eq!(
            encode_account(&sample_account(), None)[0],
            1,
            "V2 is variant 1"
        );
    }

    #[test]
    fn version_1_accounts_still_decode_with_no_handle_and_the_default_locale() {
        let mut account = sample_account();
        account.dm = None;
        account.locale = None;
        let DbAccount::V2(v2) =
            decode::<DbAccount>(&encode_account(&account, None), "account").unwrap()
        else {
            panic!("written as V2");
        };
        let v1 = encode(&DbAccount::V1(v2.base));
        assert_eq!(v1[0], 0, "V1 is variant 0");
        let back = decode_account(&v1).unwrap();
        assert_eq!(format!("{account:?}"), format!("{back:?}"));
    }

    #[test]
    fn a_damaged_handle_or_locale_is_reported_as_corrupt() {
        let bad_handle = DbAccount::V2(DbAccountV2 {
            base: match decode::<DbAccount>(&encode_account(&sample_account(), None), "account") {
                Ok(DbAccount::V2(v2)) => v2.base,
                other => panic!("{other:?}"),
            },
            dm: Some(DbDmV1 {
                platform: "twitter".into(),
                handle: "has space".into(),
            }),
            locale: None,
        });
        assert!(matches!(
            decode_account(&encode(&bad_handle)),
            Err(EngineError::Corrupt(_))
        ));
        let DbAccount::V2(mut v2) = bad_handle else {
            unreachable!()
        };
        v2.dm = None;
        v2.locale = Some(9);
        assert!(matches!(
            decode_account(&encode(&DbAccount::V2(v2))),
            Err(EngineError::Corrupt(_))
        ));
    }
}
