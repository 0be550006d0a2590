//! PUT to an internal stage: ask the server where the file goes, then upload it there.
//!
//! The server answers a `PUT` statement with stage information; the client does the upload.
//! Implemented: GCS-style presigned URLs without client-side encryption (fakesnow, which points
//! the URL back at itself). Not yet: S3 and Azure credential flows and encrypted GCS stages of
//! real accounts, which return [`Error::Unsupported`] instead of silently skipping the upload.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;

use crate::client::Client;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// gzip the data unless it already is (by its magic bytes); the stored name gets `.gz`.
    #[default]
    Auto,
    /// Upload as given.
    None,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PutOptions {
    pub compression: Compression,
    pub overwrite: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The file name as stored in the stage.
    pub file: String,
    pub bytes_uploaded: u64,
    pub compressed: bool,
}

fn check_name(what: &str, value: &str, allowed: impl Fn(char) -> bool) -> Result<()> {
    if value.is_empty() || !value.chars().all(allowed) {
        return Err(Error::Config(format!(
            "{what} {value:?} may only contain letters, digits and . _ - (and / @ for stages)"
        )));
    }
    Ok(())
}

impl Client {
    /// Uploads `data` as `file_name` to `stage` (e.g. `@RAW.EVENTS_STAGE` or `@%TABLE/sub/path`).
    pub async fn put_bytes(
        &self,
        stage: &str,
        file_name: &str,
        data: impl Into<Bytes>,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        check_name("stage", stage, |c| {
            c.is_ascii_alphanumeric() || "._-/@%\"".contains(c)
        })?;
        check_name("file name", file_name, |c| {
            c.is_ascii_alphanumeric() || "._-".contains(c)
        })?;
        if !stage.starts_with('@') {
            return Err(Error::Config(format!("stage {stage:?} must start with @")));
        }
        let data: Bytes = data.into();
        let already_gzip = data.starts_with(&[0x1f, 0x8b]);
        let (body, file, compressed) = match options.compression {
            Compression::Auto if !already_gzip => {
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 4),
                    flate2::Compression::fast(),
                );
                gz.write_all(&data).map_err(|source| Error::Io {
                    context: "compressing".into(),
                    source,
                })?;
                let out = gz.finish().map_err(|source| Error::Io {
                    context: "compressing".into(),
                    source,
                })?;
                (Bytes::from(out), format!("{file_name}.gz"), true)
            }
            _ => (data, file_name.to_owned(), already_gzip),
        };
        let sql = format!(
            "PUT 'file:///sluice/{file}' {stage} AUTO_COMPRESS=FALSE OVERWRITE={}",
            if options.overwrite { "TRUE" } else { "FALSE" }
        );
        let answer = self.submit(&sql, &[]).await?;
        if answer.command.as_deref() != Some("UPLOAD") {
            return Err(Error::protocol(format!(
                "PUT answered with command {:?}, not UPLOAD",
                answer.command
            )));
        }
        let stage_info = answer
            .stage_info
            .ok_or_else(|| Error::protocol("PUT answer without stageInfo"))?;
        match stage_info.location_type.as_str() {
            "GCS" => {
                if answer
                    .encryption_material
                    .as_ref()
                    .is_some_and(|m| !m.is_null())
                {
                    return Err(Error::Unsupported(
                        "client-side encrypted GCS stages (real accounts on GCP) are not implemented yet".into(),
                    ));
                }
                let url = stage_info
                    .presigned_url
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| {
                        Error::Unsupported(
                            "GCS stage upload with an access token instead of a presigned URL"
                                .into(),
                        )
                    })?;
                let size = body.len() as u64;
                self.http().put_bytes(&url, body, &[]).await?;
                tracing::debug!(%file, size, location = %stage_info.location, "uploaded to stage");
                Ok(PutOutcome {
                    file,
                    bytes_uploaded: size,
                    compressed,
                })
            }
            other => Err(Error::Unsupported(format!(
                "uploads to {other} stages (location {:?}) are not implemented yet; only presigned GCS URLs are",
                stage_info.location
            ))),
        }
    }

    /// Uploads a local file to `stage`, keeping its file name.
    pub async fn put_file(
        &self,
        path: &Path,
        stage: &str,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Config(format!("{} has no usable file name", path.display())))?;
        let data = tokio::fs::read(path).await.map_err(|source| Error::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        self.put_bytes(stage, name, data, options).await
    }
}
