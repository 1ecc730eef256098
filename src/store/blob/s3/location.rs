//! Where `--storage s3://bucket/prefix?endpoint=...` points, parsed and
//! checked once.

/// Where `--storage s3://...` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// A folder inside the bucket (no leading or trailing slash), or "".
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Bucket-as-host addressing (`https://BUCKET.host/key`) instead of
    /// path-style (`https://host/BUCKET/key`).
    pub virtual_hosted: bool,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME&virtual_hosted=true]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} does not start with s3://"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket"));
        }
        let mut location = S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: None,
            region: None,
            virtual_hosted: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{name} in {url:?} is not UTF-8"))?
                .into_owned();
            match name {
                "endpoint" => location.endpoint = Some(value),
                "region" => location.region = Some(value),
                "virtual_hosted" => location.virtual_hosted = value == "true",
                other => return Err(format!("unknown setting {other:?} in {url:?}")),
            }
        }
        Ok(location)
    }
}
