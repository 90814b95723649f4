//! The operations of the Twilio surface, as the route table names them (a
//! leaf: the table needs them, and the handlers need the table's request).

/// The operations of the Twilio surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v2/Services`.
    CreateService,
    /// `GET /v2/Services/{ServiceSid}`.
    FetchService,
    /// `DELETE /v2/Services/{ServiceSid}`.
    DeleteService,
    /// `POST /v2/Services/{ServiceSid}/Verifications`.
    CreateVerification,
    /// `GET /v2/Services/{ServiceSid}/Verifications/{Sid}`.
    FetchVerification,
    /// `POST /v2/Services/{ServiceSid}/Verifications/{Sid}` (`Status`).
    UpdateVerification,
    /// `POST /v2/Services/{ServiceSid}/VerificationCheck`.
    CheckVerification,
}
