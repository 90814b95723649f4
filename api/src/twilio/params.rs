//! A Twilio request's form parameters: decoded (`+` is a space), each name
//! at most once, only the names the operation takes.

use crate::error::ApiError;

/// The form parameters of one request.
#[derive(Debug)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `body`, refusing a parameter named twice or one `accepted`
    /// does not hold (naming it, and the ones it may be).
    pub fn parse(body: &[u8], accepted: &[&str]) -> Result<Params, Refused> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !accepted.contains(&name.as_str()) {
                return Err(Refused::invalid(
                    name,
                    format!(
                        "otpd does not take this parameter here (it takes {})",
                        accepted.join(", ")
                    ),
                ));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(Refused::invalid(name, "given more than once".into()));
            }
        }
        Ok(Params(pairs))
    }

    /// The value of `name`, if given (an empty value counts as not given).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// The value of `name`, which the operation needs.
    pub fn required(&self, name: &str) -> Result<&str, Refused> {
        self.get(name)
            .ok_or_else(|| Refused::invalid(name, "is required".into()))
    }
}

/// A request refused with a Twilio error: 400 `60200` naming a parameter,
/// or an otpd error to translate (`errors.rs`).
#[derive(Debug)]
pub enum Refused {
    /// `Invalid parameter: <name>`, and why.
    Invalid { name: String, why: String },
    /// 404, `20404`: the Verification is no longer pending (Twilio keeps
    /// only pending ones), and why.
    Ended(&'static str),
    /// An error otpd would answer anyway.
    Api(ApiError),
}

impl Refused {
    pub fn invalid(name: &str, why: String) -> Refused {
        Refused::Invalid {
            name: name.to_owned(),
            why,
        }
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Api(e)
    }
}

impl From<engine::EngineError> for Refused {
    fn from(e: engine::EngineError) -> Self {
        Refused::Api(ApiError::from(e))
    }
}
