//! `effbench keygen`: an Ed25519 key pair for signing bundles (format in `bundle::sign`).

use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::error::{Error, Exit};

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// The secret key file to write (mode 0600); the public key goes to KEYFILE.pub. Neither
    /// may exist.
    #[arg(long, value_name = "KEYFILE")]
    pub out: PathBuf,
}

pub fn main(args: KeygenArgs) -> CliResult {
    let fingerprint = crate::bundle::sign::keygen(&args.out).map_err(Error::bad_input)?;
    let public = crate::bundle::sign::public_path(&args.out);
    print!("{}", crate::report::listing::keygen_text(&args.out, &public, &fingerprint));
    Ok(Exit::Ok)
}
