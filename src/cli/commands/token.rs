//! `token generate` and `token validate`: offline, with the API server's exact rules.

use std::time::SystemTime;

use crate::error::Error;
use crate::k8s::token::{check_expiration, validate_group, BootstrapToken};

pub fn generate() -> Result<i32, Error> {
    let token = BootstrapToken::generate().map_err(|e| Error::Config(e.to_string()))?;
    println!("{}", token.full());
    Ok(0)
}

pub fn validate(token: &str, groups: &[String], expiration: Option<&str>) -> Result<i32, Error> {
    let result = BootstrapToken::parse(token).and_then(|t| {
        for g in groups.iter().filter(|g| !g.is_empty()) {
            validate_group(g)?;
        }
        if let Some(e) = expiration {
            check_expiration(e, SystemTime::now())?;
        }
        Ok(t)
    });
    match result {
        Ok(t) => {
            println!(
                "valid: token {t} (user system:bootstrap:{}, groups system:bootstrappers{})",
                t.id(),
                groups
                    .iter()
                    .filter(|g| !g.is_empty())
                    .map(|g| format!(", {g}"))
                    .collect::<String>()
            );
            Ok(0)
        }
        Err(e) => {
            // Never echo the token itself: it may be a real one.
            println!("invalid: {e}");
            Ok(1)
        }
    }
}
