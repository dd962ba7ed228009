//! Envelope encryption of the secret values inside config documents. Each secret is sealed with a
//! data key (AES-256-GCM); data keys are stored wrapped under a key-encryption key from settings, so
//! KEKs can be rotated by rewrapping data keys without touching the documents. Also finds which
//! values are secret (schema `x-secret` annotations and `{"$secret": …}` markers) and redacts them.

use std::collections::HashMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::biz::json_path;

/// What replaces a secret value in documents shown to readers without access to secrets.
pub const REDACTED: &str = "******";

/// The prefix of every sealed string.
const SEALED_PREFIX: &str = "enc:v1:";
/// The schema keyword marking a value as secret.
const SECRET_KEYWORD: &str = "x-secret";
/// The key of the single-entry object marking a document value as secret.
const MARKER_KEY: &str = "$secret";
/// Length of every key, in bytes (AES-256).
const KEY_BYTES: usize = 32;
/// Length of an AES-GCM nonce, in bytes.
const NONCE_BYTES: usize = 12;
/// Length of an AES-GCM authentication tag, in bytes.
const TAG_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    #[error("malformed secret: {0}")]
    Malformed(String),
    #[error("secret failed authentication")]
    Decrypt,
    #[error("invalid key material: {0}")]
    InvalidKeyMaterial(String),
}

/// Key-encryption keys from settings (id → 32 raw bytes), one of them active.
pub struct Keyring {
    keks: HashMap<String, Aes256Gcm>,
    active: String,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&str> = self.keks.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("Keyring")
            .field("ids", &ids)
            .field("active", &self.active)
            .finish()
    }
}

impl Keyring {
    /// Every key must be exactly 32 bytes, ids unique and non-empty, and `active` one of them.
    pub fn new(keys: Vec<(String, Vec<u8>)>, active: &str) -> Result<Keyring, SecretError> {
        let mut keks = HashMap::with_capacity(keys.len());
        for (id, material) in keys {
            if id.is_empty() {
                return Err(SecretError::InvalidKeyMaterial("a key has an empty id".to_owned()));
            }
            let cipher = cipher_for(&material).ok_or_else(|| {
                SecretError::InvalidKeyMaterial(format!("key `{id}` is {} bytes, not {KEY_BYTES}", material.len()))
            })?;
            if keks.contains_key(&id) {
                return Err(SecretError::InvalidKeyMaterial(format!("key `{id}` is given twice")));
            }
            keks.insert(id, cipher);
        }
        if !keks.contains_key(active) {
            return Err(SecretError::UnknownKey(active.to_owned()));
        }
        Ok(Keyring {
            keks,
            active: active.to_owned(),
        })
    }

    /// The id of the KEK new data keys are wrapped under.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// A fresh random 256-bit data key wrapped under the active KEK.
    pub fn new_data_key(&self) -> Result<(DataKey, WrappedKey), SecretError> {
        let material: [u8; KEY_BYTES] = rand::random();
        let id = uuid::Uuid::new_v4().to_string();
        let wrapped = self.wrap(&id, &material)?;
        let key = DataKey::from_material(id, &material)?;
        Ok((key, wrapped))
    }

    /// The data key `wrapped` holds, unwrapped with the KEK that wrapped it.
    pub fn unwrap_key(&self, wrapped: &WrappedKey) -> Result<DataKey, SecretError> {
        let material = self.unwrap_material(wrapped)?;
        DataKey::from_material(wrapped.id.clone(), &material)
    }

    /// Unwraps with whichever KEK wrapped it, wraps again with the active one (online rotation).
    pub fn rewrap(&self, wrapped: &WrappedKey) -> Result<WrappedKey, SecretError> {
        let material = self.unwrap_material(wrapped)?;
        self.wrap(&wrapped.id, &material)
    }

    fn wrap(&self, id: &str, material: &[u8]) -> Result<WrappedKey, SecretError> {
        let kek = self.kek(&self.active)?;
        Ok(WrappedKey {
            id: id.to_owned(),
            kek_id: self.active.clone(),
            ciphertext: seal_bytes(kek, id, material)?,
        })
    }

    fn unwrap_material(&self, wrapped: &WrappedKey) -> Result<Vec<u8>, SecretError> {
        let kek = self.kek(&wrapped.kek_id)?;
        let material = open_bytes(kek, &wrapped.id, &wrapped.ciphertext)?;
        if material.len() != KEY_BYTES {
            return Err(SecretError::Malformed(format!(
                "data key `{}` is not {KEY_BYTES} bytes",
                wrapped.id
            )));
        }
        Ok(material)
    }

    fn kek(&self, id: &str) -> Result<&Aes256Gcm, SecretError> {
        self.keks.get(id).ok_or_else(|| SecretError::UnknownKey(id.to_owned()))
    }
}

/// A data key as stored: wrapped under the KEK `kek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub id: String,
    pub kek_id: String,
    /// base64(nonce || AES-256-GCM ciphertext), with the data key id as associated data.
    pub ciphertext: String,
}

/// An unwrapped data key, ready to seal and open secret values.
pub struct DataKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl DataKey {
    fn from_material(id: String, material: &[u8]) -> Result<DataKey, SecretError> {
        let cipher = cipher_for(material)
            .ok_or_else(|| SecretError::InvalidKeyMaterial(format!("data key `{id}` is not {KEY_BYTES} bytes")))?;
        Ok(DataKey { id, cipher })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `enc:v1:<data key id>:<base64(nonce || ciphertext)>`, with a fresh random nonce each time and
    /// the data key id as associated data.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, SecretError> {
        let sealed = seal_bytes(&self.cipher, &self.id, plaintext)?;
        Ok(format!("{SEALED_PREFIX}{}:{sealed}", self.id))
    }

    /// The plaintext of a string made by [`DataKey::encrypt`] with this key.
    pub fn decrypt(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let (id, body) =
            split_sealed(sealed).ok_or_else(|| SecretError::Malformed("not a sealed string".to_owned()))?;
        if id != self.id {
            return Err(SecretError::UnknownKey(id.to_owned()));
        }
        open_bytes(&self.cipher, &self.id, body)
    }
}

/// An AES-256-GCM cipher for `material`; None unless it is exactly 32 bytes.
fn cipher_for(material: &[u8]) -> Option<Aes256Gcm> {
    Aes256Gcm::new_from_slice(material).ok()
}

/// base64(nonce || ciphertext) of `plaintext`, authenticated with `aad`.
fn seal_bytes(cipher: &Aes256Gcm, aad: &str, plaintext: &[u8]) -> Result<String, SecretError> {
    let nonce: [u8; NONCE_BYTES] = rand::random();
    let payload = Payload {
        msg: plaintext,
        aad: aad.as_bytes(),
    };
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), payload)
        .map_err(|_| SecretError::Malformed("plaintext too long to encrypt".to_owned()))?;
    let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(BASE64.encode(sealed))
}

/// The plaintext of a [`seal_bytes`] result; `Decrypt` when it does not authenticate.
fn open_bytes(cipher: &Aes256Gcm, aad: &str, encoded: &str) -> Result<Vec<u8>, SecretError> {
    let sealed = BASE64
        .decode(encoded)
        .map_err(|error| SecretError::Malformed(format!("bad base64: {error}")))?;
    if sealed.len() < NONCE_BYTES + TAG_BYTES {
        return Err(SecretError::Malformed("ciphertext too short".to_owned()));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let nonce: [u8; NONCE_BYTES] = nonce
        .try_into()
        .map_err(|_| SecretError::Malformed("ciphertext too short".to_owned()))?;
    let payload = Payload {
        msg: ciphertext,
        aad: aad.as_bytes(),
    };
    cipher
        .decrypt(&Nonce::from(nonce), payload)
        .map_err(|_| SecretError::Decrypt)
}

/// The data key id and encoded body of a sealed string.
fn split_sealed(sealed: &str) -> Option<(&str, &str)> {
    let (id, body) = sealed.strip_prefix(SEALED_PREFIX)?.split_once(':')?;
    if id.is_empty() || body.is_empty() {
        return None;
    }
    Some((id, body))
}

/// The data key id a sealed string was encrypted under, or None if it is not a sealed string.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    split_sealed(sealed).map(|(id, _)| id)
}

/// Paths of secret values: (a) every place in `document` covered by a schema property carrying
/// `"x-secret": true` (following `properties`, `items`, `prefixItems` and object-schema
/// `additionalProperties`; `$ref` is not followed), and (b) every value written as
/// `{"$secret": <value>}`. Sorted, deduplicated; nothing below a secret value is listed.
pub fn secret_paths(schema: Option<&Value>, document: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_secrets(schema, document, json_path::ROOT, &mut found);
    found.sort();
    found.dedup();
    found
}

fn collect_secrets(schema: Option<&Value>, value: &Value, path: &str, found: &mut Vec<String>) {
    let schema = schema.filter(|schema| schema.is_object());
    if marker_inner(value).is_some() || schema.is_some_and(is_secret_schema) {
        found.push(path.to_owned());
        return;
    }
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                collect_secrets(property_schema(schema, key), field, &json_path::child(path, key), found);
            }
        }
        Value::Array(items) => {
            for (position, item) in items.iter().enumerate() {
                collect_secrets(
                    item_schema(schema, position),
                    item,
                    &json_path::index(path, position),
                    found,
                );
            }
        }
        _ => {}
    }
}

fn is_secret_schema(schema: &Value) -> bool {
    schema.get(SECRET_KEYWORD).and_then(Value::as_bool) == Some(true)
}

/// The schema for property `key` of an object validated by `schema`.
fn property_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let schema = schema?;
    if let Some(declared) = schema.get("properties").and_then(|properties| properties.get(key)) {
        return Some(declared);
    }
    schema
        .get("additionalProperties")
        .filter(|additional| additional.is_object())
}

/// The schema for element `position` of an array validated by `schema`: its `prefixItems` entry
/// (or entry of the older array form of `items`), else the schema form of `items`.
fn item_schema(schema: Option<&Value>, position: usize) -> Option<&Value> {
    let schema = schema?;
    let items = schema.get("items");
    let tuple = schema.get("prefixItems").or(items).and_then(Value::as_array);
    if let Some(positional) = tuple.and_then(|tuple| tuple.get(position)) {
        return Some(positional);
    }
    items.filter(|items| items.is_object())
}

/// The value inside a `{"$secret": v}` marker.
fn marker_inner(value: &Value) -> Option<&Value> {
    let fields = value.as_object()?;
    if fields.len() != 1 {
        return None;
    }
    fields.get(MARKER_KEY)
}

/// Replaces each `{"$secret": v}` marker by `v` (recursively).
pub fn unwrap_markers(document: &mut Value) {
    if let Some(inner) = take_marker(document) {
        *document = inner;
        unwrap_markers(document);
        return;
    }
    match document {
        Value::Object(fields) => fields.values_mut().for_each(unwrap_markers),
        Value::Array(items) => items.iter_mut().for_each(unwrap_markers),
        _ => {}
    }
}

fn take_marker(value: &mut Value) -> Option<Value> {
    marker_inner(value)?;
    value.as_object_mut()?.remove(MARKER_KEY)
}

/// Replaces the value at each path by [`REDACTED`] (missing paths ignored).
pub fn redact(document: &mut Value, paths: &[String]) {
    for path in paths {
        if let Some(value) = json_path::lookup_mut(document, path) {
            *value = Value::String(REDACTED.to_owned());
        }
    }
}

/// Encrypts the value at each path (its JSON text) into a sealed string. Missing paths and values
/// that are already sealed are left alone.
pub fn seal(document: &mut Value, paths: &[String], key: &DataKey) -> Result<(), SecretError> {
    for path in paths {
        let Some(value) = json_path::lookup_mut(document, path) else {
            continue;
        };
        if value.as_str().and_then(sealed_key_id).is_some() {
            continue;
        }
        let text = serde_json::to_string(value).map_err(|error| SecretError::Malformed(error.to_string()))?;
        *value = Value::String(key.encrypt(text.as_bytes())?);
    }
    Ok(())
}

/// Replaces every sealed string anywhere in the document by the decrypted JSON value, using
/// `key_for(id)` to find data keys.
pub fn open(document: &mut Value, key_for: &dyn Fn(&str) -> Option<Arc<DataKey>>) -> Result<(), SecretError> {
    match document {
        Value::String(text) => {
            if let Some(opened) = open_string(text, key_for)? {
                *document = opened;
            }
            Ok(())
        }
        Value::Object(fields) => fields.values_mut().try_for_each(|field| open(field, key_for)),
        Value::Array(items) => items.iter_mut().try_for_each(|item| open(item, key_for)),
        _ => Ok(()),
    }
}

/// The JSON value sealed in `text`, or None when `text` is not a sealed string.
fn open_string(text: &str, key_for: &dyn Fn(&str) -> Option<Arc<DataKey>>) -> Result<Option<Value>, SecretError> {
    let Some(id) = sealed_key_id(text) else {
        return Ok(None);
    };
    let key = key_for(id).ok_or_else(|| SecretError::UnknownKey(id.to_owned()))?;
    let plaintext = key.decrypt(text)?;
    let value = serde_json::from_slice(&plaintext)
        .map_err(|error| SecretError::Malformed(format!("sealed value is not JSON: {error}")))?;
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEK_A: [u8; 32] = [0xA1; 32];
    const KEK_B: [u8; 32] = [0xB2; 32];

    fn keyring(keys: &[(&str, [u8; 32])], active: &str) -> Keyring {
        let keys = keys
            .iter()
            .map(|(id, bytes)| ((*id).to_owned(), bytes.to_vec()))
            .collect();
        Keyring::new(keys, active).unwrap()
    }

    fn flip_byte(encoded: &str, at: usize) -> String {
        let mut bytes = BASE64.decode(encoded).unwrap();
        bytes[at] ^= 0x01;
        BASE64.encode(bytes)
    }

    #[test]
    fn keyring_rejects_bad_material() {
        let short = Keyring::new(vec![("a".to_owned(), vec![0; 31])], "a");
        assert!(matches!(short, Err(SecretError::InvalidKeyMaterial(_))));
        let missing = Keyring::new(vec![("a".to_owned(), vec![0; 32])], "b");
        assert!(matches!(missing, Err(SecretError::UnknownKey(id)) if id == "b"));
        let twice = Keyring::new(vec![("a".to_owned(), vec![0; 32]), ("a".to_owned(), vec![1; 32])], "a");
        assert!(matches!(twice, Err(SecretError::InvalidKeyMaterial(_))));
    }

    #[test]
    fn wrap_and_unwrap() {
        let ring = keyring(&[("a", KEK_A)], "a");
        assert_eq!(ring.active_id(), "a");
        let (key, wrapped) = ring.new_data_key().unwrap();
        assert_eq!(wrapped.id, key.id());
        assert_eq!(wrapped.kek_id, "a");
        let unwrapped = ring.unwrap_key(&wrapped).unwrap();
        assert_eq!(unwrapped.id(), key.id());
        let sealed = key.encrypt(b"hello").unwrap();
        assert_eq!(unwrapped.decrypt(&sealed).unwrap(), b"hello");
    }

    #[test]
    fn data_keys_are_distinct() {
        let ring = keyring(&[("a", KEK_A)], "a");
        let (first, first_wrapped) = ring.new_data_key().unwrap();
        let (second, second_wrapped) = ring.new_data_key().unwrap();
        assert_ne!(first.id(), second.id());
        assert_ne!(first_wrapped.ciphertext, second_wrapped.ciphertext);
    }

    #[test]
    fn rewrap_under_new_active_key() {
        let old = keyring(&[("a", KEK_A)], "a");
        let (key, wrapped) = old.new_data_key().unwrap();
        let sealed = key.encrypt(b"value").unwrap();

        let rotated = keyring(&[("a", KEK_A), ("b", KEK_B)], "b");
        let rewrapped = rotated.rewrap(&wrapped).unwrap();
        assert_eq!(rewrapped.id, wrapped.id);
        assert_eq!(rewrapped.kek_id, "b");
        assert_ne!(rewrapped.ciphertext, wrapped.ciphertext);

        let unwrapped = rotated.unwrap_key(&rewrapped).unwrap();
        assert_eq!(unwrapped.decrypt(&sealed).unwrap(), b"value");
        assert!(matches!(old.unwrap_key(&rewrapped), Err(SecretError::UnknownKey(id)) if id == "b"));
    }

    #[test]
    fn tampered_wrapped_key_fails_authentication() {
        let ring = keyring(&[("a", KEK_A)], "a");
        let (_, wrapped) = ring.new_data_key().unwrap();
        for at in [0, NONCE_BYTES, NONCE_BYTES + KEY_BYTES + 1] {
            let tampered = WrappedKey {
                ciphertext: flip_byte(&wrapped.ciphertext, at),
                ..wrapped.clone()
            };
            assert!(
                matches!(ring.unwrap_key(&tampered), Err(SecretError::Decrypt)),
                "byte {at}"
            );
        }
    }

    #[test]
    fn wrapped_key_is_bound_to_its_id_and_kek() {
        let ring = keyring(&[("a", KEK_A), ("b", KEK_B)], "a");
        let (_, wrapped) = ring.new_data_key().unwrap();
        let renamed = WrappedKey {
            id: "another".to_owned(),
            ..wrapped.clone()
        };
        assert!(matches!(ring.unwrap_key(&renamed), Err(SecretError::Decrypt)));
        let other_kek = WrappedKey {
            kek_id: "b".to_owned(),
            ..wrapped
        };
        assert!(matches!(ring.unwrap_key(&other_kek), Err(SecretError::Decrypt)));
    }

    #[test]
    fn tampered_sealed_value_fails_authentication() {
        let ring = keyring(&[("a", KEK_A)], "a");
        let (key, _) = ring.new_data_key().unwrap();
        let sealed = key.encrypt(b"secret").unwrap();
        let (id, body) = split_sealed(&sealed).unwrap();
        let tampered = format!("{SEALED_PREFIX}{id}:{}", flip_byte(body, NONCE_BYTES));
        assert!(matches!(key.decrypt(&tampered), Err(SecretError::Decrypt)));
    }

    #[test]
    fn sealed_value_needs_the_right_key_and_id() {
        let material = [7u8; 32];
        let key = DataKey::from_material("k1".to_owned(), &material).unwrap();
        let sealed = key.encrypt(b"secret").unwrap();

        let wrong_bytes = DataKey::from_material("k1".to_owned(), &[8u8; 32]).unwrap();
        assert!(matches!(wrong_bytes.decrypt(&sealed), Err(SecretError::Decrypt)));

        let same_bytes_other_id = DataKey::from_material("k2".to_owned(), &material).unwrap();
        let relabelled = sealed.replacen(":k1:", ":k2:", 1);
        assert!(matches!(
            same_bytes_other_id.decrypt(&relabelled),
            Err(SecretError::Decrypt)
        ));
        assert!(matches!(same_bytes_other_id.decrypt(&sealed), Err(SecretError::UnknownKey(id)) if id == "k1"));
    }

    #[test]
    fn encryption_uses_fresh_nonces() {
        let key = DataKey::from_material("k".to_owned(), &[3u8; 32]).unwrap();
        let first = key.encrypt(b"same").unwrap();
        let second = key.encrypt(b"same").unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("enc:v1:k:"));
    }

    #[test]
    fn malformed_sealed_strings() {
        let key = DataKey::from_material("k".to_owned(), &[3u8; 32]).unwrap();
        assert!(matches!(key.decrypt("plain"), Err(SecretError::Malformed(_))));
        assert!(matches!(key.decrypt("enc:v1:k:!!!"), Err(SecretError::Malformed(_))));
        assert!(matches!(key.decrypt("enc:v1:k:AAAA"), Err(SecretError::Malformed(_))));
    }

    #[test]
    fn sealed_key_ids() {
        assert_eq!(sealed_key_id("enc:v1:abc:Zm9v"), Some("abc"));
        assert_eq!(sealed_key_id("enc:v1::Zm9v"), None);
        assert_eq!(sealed_key_id("enc:v1:abc"), None);
        assert_eq!(sealed_key_id("hello"), None);
    }

    #[test]
    fn seal_and_open_round_trip() {
        let ring = keyring(&[("a", KEK_A)], "a");
        let (key, _) = ring.new_data_key().unwrap();
        let original = json!({
            "db": {"password": "hunter2", "port": 5432},
            "tokens": [{"value": 42}, {"value": {"nested": [true, null]}}],
            "pin": 1234,
            "flags": [false, "plain"]
        });
        let paths: Vec<String> = [
            "$.db.password",
            "$.tokens[0].value",
            "$.tokens[1].value",
            "$.pin",
            "$.flags[0]",
            "$.nope",
        ]
        .iter()
        .map(|path| (*path).to_owned())
        .collect();
        let mut document = original.clone();
        seal(&mut document, &paths, &key).unwrap();
        assert_eq!(document["db"]["port"], json!(5432));
        assert_eq!(document["flags"][1], json!("plain"));
        for path in &paths[..5] {
            let sealed = json_path::lookup(&document, path).and_then(Value::as_str).unwrap();
            assert_eq!(sealed_key_id(sealed), Some(key.id()), "{path}");
        }
        assert!(!document.to_string().contains("hunter2"));

        let resealed = document.clone();
        seal(&mut document, &paths, &key).unwrap();
        assert_eq!(document, resealed, "sealed values are not sealed twice");

        let key = Arc::new(key);
        let id = key.id().to_owned();
        let lookup = |wanted: &str| (wanted == id).then(|| Arc::clone(&key));
        open(&mut document, &lookup).unwrap();
        assert_eq!(document, original);
    }

    #[test]
    fn open_with_unknown_key_fails() {
        let key = DataKey::from_material("k".to_owned(), &[3u8; 32]).unwrap();
        let mut document = json!({"a": "x"});
        seal(&mut document, &["$.a".to_owned()], &key).unwrap();
        let result = open(&mut document, &|_| None);
        assert!(matches!(result, Err(SecretError::UnknownKey(id)) if id == "k"));
    }

    #[test]
    fn secret_paths_from_schema_annotations() {
        let schema = json!({
            "type": "object",
            "properties": {
                "db": {"type": "object", "properties": {"password": {"type": "string", "x-secret": true}, "host": {}}},
                "users": {"type": "array", "items": {"type": "object", "properties": {"token": {"x-secret": true}}}},
                "pair": {
                    "type": "array",
                    "prefixItems": [{"x-secret": true}, {}],
                    "items": {"properties": {"k": {"x-secret": true}}}
                },
                "env": {"type": "object", "properties": {"PUBLIC": {}}, "additionalProperties": {"x-secret": true}},
                "plain": {"x-secret": false},
                "linked": {"$ref": "#/$defs/secret"}
            },
            "$defs": {"secret": {"x-secret": true}}
        });
        let document = json!({
            "db": {"password": "p", "host": "h"},
            "users": [{"token": "t0", "name": "a"}, {"name": "b"}, {"token": {"deep": 1}}],
            "pair": ["first", "second", {"k": 1}],
            "env": {"PUBLIC": "x", "API_KEY": "y", "OTHER": 3},
            "plain": "p",
            "linked": "l"
        });
        assert_eq!(
            secret_paths(Some(&schema), &document),
            vec![
                "$.db.password",
                "$.env.API_KEY",
                "$.env.OTHER",
                "$.pair[0]",
                "$.pair[2].k",
                "$.users[0].token",
                "$.users[2].token",
            ]
        );
    }

    #[test]
    fn secret_paths_from_markers_and_schema_together() {
        let schema = json!({"properties": {"a": {"x-secret": true}, "b": {"properties": {"c": {"x-secret": true}}}}});
        let document = json!({
            "a": {"$secret": "both"},
            "b": {"$secret": {"c": 1}},
            "list": [1, {"$secret": [2, 3]}],
            "odd key": {"$secret": true},
            "not_marker": {"$secret": 1, "other": 2}
        });
        assert_eq!(
            secret_paths(Some(&schema), &document),
            vec!["$.a", "$.b", "$.list[1]", "$['odd key']"]
        );
        assert_eq!(secret_paths(None, &json!("x")), Vec::<String>::new());
    }

    #[test]
    fn legacy_tuple_items() {
        let schema = json!({"items": [{}, {"x-secret": true}]});
        assert_eq!(secret_paths(Some(&schema), &json!(["a", "b", "c"])), vec!["$[1]"]);
    }

    #[test]
    fn unwrap_markers_replaces_them_recursively() {
        let mut document = json!({
            "a": {"$secret": "x"},
            "b": [{"$secret": {"inner": {"$secret": 5}}}],
            "c": {"$secret": {"$secret": null}},
            "d": {"$secret": 1, "other": 2}
        });
        unwrap_markers(&mut document);
        assert_eq!(
            document,
            json!({"a": "x", "b": [{"inner": 5}], "c": null, "d": {"$secret": 1, "other": 2}})
        );
    }

    #[test]
    fn redact_replaces_values() {
        let mut document = json!({"db": {"password": {"deep": 1}, "host": "h"}, "list": [1, 2]});
        let paths = vec![
            "$.db.password".to_owned(),
            "$.list[1]".to_owned(),
            "$.missing.x".to_owned(),
        ];
        redact(&mut document, &paths);
        assert_eq!(
            document,
            json!({"db": {"password": REDACTED, "host": "h"}, "list": [1, REDACTED]})
        );
    }

    #[test]
    fn debug_output_hides_key_bytes() {
        let ring = keyring(&[("a", KEK_A), ("b", KEK_B)], "a");
        let printed = format!("{ring:?}");
        assert!(printed.contains("\"a\"") && printed.contains("\"b\""), "{printed}");
        for secret in [&KEK_A, &KEK_B] {
            assert!(!printed.contains(&format!("{}", secret[0])), "{printed}");
            assert!(!printed.contains(&hex::encode(secret)), "{printed}");
        }
        let material = [0xC3u8; 32];
        let key = DataKey::from_material("k".to_owned(), &material).unwrap();
        let printed = format!("{key:?}");
        assert!(printed.contains("\"k\""), "{printed}");
        assert!(!printed.contains(&format!("{}", material[0])), "{printed}");
        assert!(!printed.contains(&hex::encode(material)), "{printed}");
        assert!(!printed.contains(&BASE64.encode(material)), "{printed}");
    }
}
