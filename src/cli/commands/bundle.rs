//! `bundle verify DIR`: every artifact of an air-gap bundle against its manifest's sha256,
//! one line each, as `sha256sum -c` reports (exit 0 all good, 1 any bad, 2 no manifest).

use std::path::Path;

use crate::artifact::manifest::{verify as verify_bundle, Bundle};
use crate::error::{CommandError, Error};

pub fn verify(dir: &Path) -> Result<i32, Error> {
    let bundle = Bundle::load(dir).map_err(CommandError::Bundle)?;
    let verdicts = verify_bundle(&bundle);
    let mut bad = 0;
    for v in &verdicts {
        let e = &v.entry;
        match &v.problem {
            None => println!("{} {} {}: OK", e.name, e.version, e.path),
            Some(why) => {
                bad += 1;
                println!("{} {} {}: FAILED: {why}", e.name, e.version, e.path);
            }
        }
    }
    if bad == 0 {
        println!(
            "{} artifact(s) verified in {}",
            verdicts.len(),
            dir.display()
        );
        Ok(0)
    } else {
        println!(
            "{bad} of {} artifact(s) FAILED in {}",
            verdicts.len(),
            dir.display()
        );
        Ok(1)
    }
}
