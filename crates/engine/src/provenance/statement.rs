//! The documents, as serde types: an in-toto Statement v1
//! (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>) whose predicate is SLSA Provenance v1
//! (<https://slsa.dev/spec/v1.0/provenance>). Field order is the specs' order, optional fields are left out when
//! empty (the spec reads unset, null and empty alike), and maps are `BTreeMap`s: the same values always give the
//! same bytes. `Deserialize` too, so `kiln provenance` and tests can read a statement back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// in-toto Statement v1: what the attestation is about (`subject`) and what it says (`predicate`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Provenance,
}

/// in-toto ResourceDescriptor v1: an artifact by name, URI and digests (at least one of `uri` and `digest`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Algorithm → lowercase hex (`sha256`, or `gitCommit` for a commit id), as the in-toto DigestSet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, Value>,
}

/// The SLSA Provenance v1 predicate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

/// The inputs of the build: what was asked (`externalParameters`), what the builder chose itself
/// (`internalParameters`), and the artifacts it used, by digest (`resolvedDependencies`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub internal_parameters: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// This execution of the build: who ran it and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    #[serde(default, skip_serializing_if = "BuildMetadata::is_empty")]
    pub metadata: BuildMetadata,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub byproducts: Vec<ResourceDescriptor>,
}

/// The build platform: its `id` is what a verifier decides trust on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Builder {
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builder_dependencies: Vec<ResourceDescriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

/// Times are RFC 3339 in UTC with a `Z` (in-toto's Timestamp field type).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

impl BuildMetadata {
    fn is_empty(&self) -> bool {
        self.invocation_id.is_none() && self.started_on.is_none() && self.finished_on.is_none()
    }
}

/// A DigestSet with one sha256 entry.
pub fn sha256(digest: &crate::digest::Digest) -> BTreeMap<String, String> {
    [("sha256".to_string(), digest.hex().to_string())].into()
}
