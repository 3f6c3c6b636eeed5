//! Publishing: the sandbox admins edit, the numbered production versions,
//! and the moves between them (apply, rollback, the import of the
//! configuration's flow file). Storage keeps the versions (`model::version`);
//! the engine runs them (`engine::versions`); this module decides what may
//! become production.
//!
//! An apply is all or nothing: the document is validated and compiled
//! first, and production moves only if it is still the version the admin
//! saw (two applies on the same base: one wins, the other is told).

pub mod diff;
pub mod trial;
pub mod uploads;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::engine::Engine;
use crate::engine::clock::Clock;
use crate::flow::{CompiledFlow, Flow, Issue, PluginCatalog};
use crate::model::version::{FlowVersion, Sandbox, UploadedPlugin, VersionOrigin};
use crate::registry::PluginSet;
use crate::storage::{NewVersion, Storage, StorageError};
use uploads::{UploadError, Uploads};

/// Test contacts a sandbox may have.
pub const MAX_TEST_CONTACTS: usize = 100;

/// Why a publishing request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The document does not parse or does not validate: every problem,
    /// with its path.
    #[error("the flow does not validate: {} problems, each in `issues` with its path", .0.len())]
    Invalid(Vec<Issue>),
    /// Production moved since the version the request was based on.
    #[error(
        "production is version {current}, not {expected} as this request expected; review the diff and apply again"
    )]
    Conflict { expected: u64, current: u64 },
    #[error("{0}")]
    NotFound(String),
    /// Valid, but would harm what runs now (its issues say what and where).
    #[error("{message}")]
    Unsafe {
        code: &'static str,
        message: String,
        issues: Vec<Issue>,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What validation found.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Validation {
    pub valid: bool,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

/// The sandbox, production and the versions of one server.
pub struct Publisher {
    storage: Storage,
    uploads: Arc<Uploads>,
    /// The running engine, switched on apply; `None` when the server
    /// started without a flow (a version applied then serves after a
    /// restart).
    engine: Option<Arc<Engine>>,
    clock: Arc<dyn Clock>,
    /// Held by each sandbox edit from its read to its write, so two edits
    /// at once (two uploads, say) cannot lose one another's change.
    sandbox_edits: tokio::sync::Mutex<()>,
}

impl Publisher {
    pub fn new(
        storage: Storage,
        uploads: Arc<Uploads>,
        engine: Option<Arc<Engine>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Publisher {
            storage,
            uploads,
            engine,
            clock,
            sandbox_edits: tokio::sync::Mutex::default(),
        }
    }

    /// Whether applied versions take effect at once.
    pub fn is_live(&self) -> bool {
        self.engine.is_some()
    }

    pub async fn production(&self) -> Result<Option<FlowVersion>, StorageError> {
        self.storage.production().await
    }

    /// The sandbox; before the first edit, a copy of production (or an
    /// empty flow when there is none).
    pub async fn sandbox(&self) -> Result<Sandbox, StorageError> {
        if let Some(sandbox) = self.storage.sandbox().await? {
            return Ok(sandbox);
        }
        let production = self.storage.production().await?;
        Ok(Sandbox {
            document: match &production {
                Some(version) => version.document.clone(),
                None => normalised(&Flow::default()),
            },
            based_on: production.as_ref().map_or(0, |v| v.number),
            updated_at_ms: 0,
            test_contacts: Vec::new(),
            plugins: production.map(|v| v.plugins).unwrap_or_default(),
        })
    }

    /// Replaces the whole sandbox with `text` (YAML or JSON); it is now
    /// based on the production version. A document that does not parse is
    /// refused; one that parses but does not validate is kept (it is a
    /// draft) and its problems are returned.
    pub async fn replace_sandbox(&self, text: &str) -> Result<(Sandbox, Validation), PublishError> {
        let _edit = self.sandbox_edits.lock().await;
        let flow = crate::flow::parse_all(text).map_err(PublishError::Invalid)?;
        let based_on = self.storage.production().await?.map_or(0, |v| v.number);
        let current = self.sandbox().await?;
        let (sandbox, mut validation) = self
            .save_sandbox(Sandbox {
                document: normalised(&flow),
                based_on,
                ..current
            })
            .await?;
        // What validation found, at its place in the text just sent.
        let positions = crate::flow::Positions::of(text);
        positions.annotate(&mut validation.errors);
        positions.annotate(&mut validation.warnings);
        Ok((sandbox, validation))
    }

    /// Makes the sandbox a copy of production again.
    pub async fn reset_sandbox(&self) -> Result<(Sandbox, Validation), PublishError> {
        let _edit = self.sandbox_edits.lock().await;
        let production = self.storage.production().await?;
        let current = self.sandbox().await?;
        Ok(self
            .save_sandbox(Sandbox {
                based_on: production.as_ref().map_or(0, |v| v.number),
                plugins: production
                    .as_ref()
                    .map(|v| v.plugins.clone())
                    .unwrap_or_default(),
                document: production.map_or_else(|| normalised(&Flow::default()), |v| v.document),
                ..current
            })
            .await?)
    }

    /// Sets the customers whose new sessions run on the sandbox.
    pub async fn set_test_contacts(
        &self,
        contacts: Vec<String>,
    ) -> Result<(Sandbox, Validation), PublishError> {
        let _edit = self.sandbox_edits.lock().await;
        let bad: Vec<Issue> = contacts
            .iter()
            .enumerate()
            .filter(|(_, id)| id.is_empty() || id.len() > 128 || id.chars().any(char::is_control))
            .map(|(i, _)| {
                issue(
                    &format!("test_contacts[{i}]"),
                    "a customer id is 1 to 128 characters, none of them control characters".into(),
                )
            })
            .collect();
        if contacts.len() > MAX_TEST_CONTACTS {
            return Err(PublishError::Invalid(vec![issue(
                "test_contacts",
                format!("at most {MAX_TEST_CONTACTS} test contacts"),
            )]));
        }
        if !bad.is_empty() {
            return Err(PublishError::Invalid(bad));
        }
        let sandbox = self.sandbox().await?;
        Ok(self
            .save_sandbox(Sandbox {
                test_contacts: contacts,
                ..sandbox
            })
            .await?)
    }

    /// Gives the engine the sandbox for its test contacts (at start, and
    /// after every change): only while it validates; else nobody gets it.
    pub async fn arm_sandbox(&self) -> Result<(), StorageError> {
        let Some(engine) = &self.engine else {
            return Ok(());
        };
        let sandbox = self.sandbox().await?;
        let armed = match sandbox.test_contacts.is_empty() {
            true => None,
            false => self
                .compile(&sandbox.document, &sandbox.plugins)
                .await
                .ok()
                .map(|(compiled, plugins, _)| (Arc::new(compiled), plugins, sandbox.test_contacts)),
        };
        engine.set_sandbox(armed);
        Ok(())
    }

    /// One entity of the sandbox (`section` such as `queues`).
    pub async fn entity(&self, section: &str, name: &str) -> Result<Value, PublishError> {
        known_section(section)?;
        self.sandbox()
            .await?
            .document
            .get(section)
            .and_then(|entries| entries.get(name))
            .cloned()
            .ok_or_else(|| PublishError::NotFound(format!("the sandbox has no {section}.{name}")))
    }

    /// Creates or replaces (`Some`) or deletes (`None`) one entity of the
    /// sandbox. The changed document must still parse.
    pub async fn put_entity(
        &self,
        section: &str,
        name: &str,
        value: Option<Value>,
    ) -> Result<(Sandbox, Validation), PublishError> {
        let _edit = self.sandbox_edits.lock().await;
        known_section(section)?;
        let sandbox = self.sandbox().await?;
        let mut document = sandbox.document.clone();
        let entries = document
            .as_object_mut()
            .expect("a flow document is an object")
            .entry(section)
            .or_insert_with(|| Value::Object(Default::default()));
        let entries = entries.as_object_mut().expect("sections are objects");
        match value {
            Some(value) => {
                entries.insert(name.to_string(), value);
            }
            None => {
                if entries.remove(name).is_none() {
                    return Err(PublishError::NotFound(format!(
                        "the sandbox has no {section}.{name}"
                    )));
                }
            }
        }
        let flow = parse_value(document)?;
        Ok(self
            .save_sandbox(Sandbox {
                document: normalised(&flow),
                ..sandbox
            })
            .await?)
    }

    /// Stores `sandbox` (stamped now) and arms it for test contacts.
    async fn save_sandbox(&self, sandbox: Sandbox) -> Result<(Sandbox, Validation), StorageError> {
        let sandbox = Sandbox {
            updated_at_ms: self.clock.now_ms(),
            ..sandbox
        };
        let validation = self.validate(&sandbox.document, &sandbox.plugins).await;
        self.storage.put_sandbox(sandbox.clone()).await?;
        self.arm_sandbox().await?;
        Ok((sandbox, validation))
    }

    /// Checks, compiles and stores an uploaded component, and pins it in
    /// the sandbox under the name it declares (replacing an earlier upload
    /// of that name there). Production is untouched until an apply.
    pub async fn upload_plugin(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(UploadedPlugin, Sandbox, Validation), UploadError> {
        let record = self.uploads.upload(bytes, self.clock.now_ms()).await?;
        let _edit = self.sandbox_edits.lock().await;
        let mut sandbox = self.sandbox().await?;
        sandbox
            .plugins
            .insert(record.name.clone(), record.sha256.clone());
        let (sandbox, validation) = self.save_sandbox(sandbox).await?;
        Ok((record, sandbox, validation))
    }

    /// Takes upload `name` out of the sandbox.
    pub async fn unpin_plugin(&self, name: &str) -> Result<(Sandbox, Validation), PublishError> {
        let _edit = self.sandbox_edits.lock().await;
        let mut sandbox = self.sandbox().await?;
        if sandbox.plugins.remove(name).is_none() {
            return Err(PublishError::NotFound(format!(
                "the sandbox has no uploaded plugin `{name}`"
            )));
        }
        Ok(self.save_sandbox(sandbox).await?)
    }

    /// Every uploaded component's record.
    pub async fn uploads(&self) -> Result<Vec<UploadedPlugin>, StorageError> {
        self.storage.uploads().await
    }

    /// Validates a document against the server's plugins and the uploads
    /// `pins` names.
    pub async fn validate(&self, document: &Value, pins: &BTreeMap<String, String>) -> Validation {
        match self.compile(document, pins).await {
            Ok((_, _, warnings)) => Validation {
                valid: true,
                errors: Vec::new(),
                warnings,
            },
            Err(errors) => Validation {
                valid: false,
                errors,
                warnings: Vec::new(),
            },
        }
    }

    /// The sandbox, compiled with the plugins it pins (for trial chats).
    pub async fn compiled_sandbox(&self) -> Result<(CompiledFlow, PluginSet), Vec<Issue>> {
        let sandbox = self
            .sandbox()
            .await
            .map_err(|e| vec![issue("(storage)", e.to_string())])?;
        let (compiled, plugins, _) = self.compile(&sandbox.document, &sandbox.plugins).await?;
        Ok((compiled, plugins))
    }

    /// Compiles a stored version with the plugins it pins.
    pub async fn compile_version(
        &self,
        version: &FlowVersion,
    ) -> Result<(CompiledFlow, PluginSet, Vec<Issue>), Vec<Issue>> {
        self.compile(&version.document, &version.plugins).await
    }

    async fn compile(
        &self,
        document: &Value,
        pins: &BTreeMap<String, String>,
    ) -> Result<(CompiledFlow, PluginSet, Vec<Issue>), Vec<Issue>> {
        let flow = parse_value(document.clone()).map_err(|e| match e {
            PublishError::Invalid(issues) => issues,
            other => vec![issue("(document)", other.to_string())],
        })?;
        let plugins = self
            .uploads
            .set(pins)
            .await
            .map_err(|why| vec![issue("(plugins)", why)])?;
        let catalog = PluginCatalog::from_set(&plugins);
        let (compiled, warnings) =
            crate::flow::compile(flow, &catalog).map_err(|report| report.errors)?;
        Ok((compiled, plugins, warnings))
    }

    /// Publishes the sandbox as the next production version.
    /// `expected_production` defaults to the version the sandbox is based on.
    pub async fn apply(
        &self,
        comment: String,
        expected_production: Option<u64>,
    ) -> Result<FlowVersion, PublishError> {
        let sandbox = self.sandbox().await?;
        let expected = expected_production.unwrap_or(sandbox.based_on);
        let publish = Publish {
            document: sandbox.document,
            plugins: sandbox.plugins,
            comment,
            expected,
            origin: VersionOrigin::Sandbox,
        };
        self.publish(publish).await
    }

    /// Publishes version `to`'s document again, as the next version.
    pub async fn rollback(
        &self,
        to: u64,
        comment: String,
        expected_production: Option<u64>,
    ) -> Result<FlowVersion, PublishError> {
        let old = self
            .storage
            .flow_version(to)
            .await?
            .ok_or_else(|| PublishError::NotFound(format!("there is no version {to}")))?;
        let current = self.storage.production().await?.map_or(0, |v| v.number);
        let expected = expected_production.unwrap_or(current);
        self.publish(Publish {
            document: old.document,
            plugins: old.plugins,
            comment,
            expected,
            origin: VersionOrigin::Rollback { to },
        })
        .await
    }

    /// At start: imports the configuration's flow file as a new version
    /// unless it is the file last imported (an unchanged file does not undo
    /// what admins applied since). Returns production afterwards.
    pub async fn import_file(
        &self,
        path: &str,
        text: &str,
    ) -> Result<Option<FlowVersion>, PublishError> {
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
        if self.storage.last_file_import().await?.as_deref() == Some(sha256.as_str()) {
            return Ok(self.storage.production().await?);
        }
        let flow = crate::flow::parse_all(text).map_err(PublishError::Invalid)?;
        // The file names no uploads: it runs with those production pins.
        let production = self.storage.production().await?;
        let version = self
            .publish(Publish {
                document: normalised(&flow),
                expected: production.as_ref().map_or(0, |v| v.number),
                plugins: production.map(|v| v.plugins).unwrap_or_default(),
                comment: format!("imported from {path}"),
                origin: VersionOrigin::File {
                    path: path.to_string(),
                    sha256,
                },
            })
            .await?;
        Ok(Some(version))
    }

    async fn publish(&self, publish: Publish) -> Result<FlowVersion, PublishError> {
        let Publish {
            document,
            plugins: pins,
            comment,
            expected,
            origin,
        } = publish;
        let (compiled, plugins, _) = self
            .compile(&document, &pins)
            .await
            .map_err(PublishError::Invalid)?;
        let unusable = crate::flow::secrets::unusable_secrets(&compiled.flow);
        if !unusable.is_empty() {
            let issues = unusable
                .into_iter()
                .map(|problem| match problem.split_once(": ") {
                    Some((path, message)) => issue(path, message.to_string()),
                    None => issue("accounts", problem),
                })
                .collect();
            return Err(PublishError::Invalid(issues));
        }
        let production = self.storage.production().await?;
        if let Some(production) = &production {
            self.check_safe(&production.document, &compiled).await?;
        }
        let applied_by = match origin {
            VersionOrigin::File { .. } => "file",
            _ => "admin",
        };
        let rebase_sandbox = origin == VersionOrigin::Sandbox;
        let new = NewVersion {
            document,
            applied_by: applied_by.into(),
            applied_at_ms: self.clock.now_ms(),
            comment,
            origin,
            expected_production: expected,
            rebase_sandbox,
            plugins: pins,
        };
        let version = self
            .storage
            .publish(new)
            .await?
            .map_err(|moved| PublishError::Conflict {
                expected: moved.expected,
                current: moved.current,
            })?;
        if let Some(engine) = &self.engine {
            engine.switch_to(version.number, Arc::new(compiled), plugins);
        }
        tracing::info!(
            version = version.number,
            "flow version {} applied: {}",
            version.number,
            version.comment
        );
        Ok(version)
    }

    /// What a running server cannot take without harm: other accounts (the
    /// webhook secrets and send endpoints are read at start), or a queue
    /// removed while conversations wait in it (nobody would route them).
    async fn check_safe(&self, current: &Value, next: &CompiledFlow) -> Result<(), PublishError> {
        if self.engine.is_none() {
            return Ok(());
        }
        let next_accounts = serde_json::to_value(&next.flow.accounts).unwrap_or(Value::Null);
        let current_accounts = current.get("accounts").cloned().unwrap_or(Value::Null);
        if next_accounts != current_accounts {
            return Err(PublishError::Unsafe {
                code: "accounts_changed",
                message: "accounts change only with a restart: change them in the configuration's flow file (webhook secrets and send endpoints are read at start)".into(),
                issues: vec![issue("accounts", "differs from production".into())],
            });
        }
        let waiting = self.storage.waiting().await?;
        let mut gone: Vec<Issue> = waiting
            .iter()
            .filter(|(_, w)| !next.flow.queues.contains_key(&w.queue))
            .map(|(_, w)| {
                issue(
                    &format!("queues.{}", w.queue),
                    "conversations wait in this queue; keep it until they are answered".into(),
                )
            })
            .collect();
        gone.sort();
        gone.dedup();
        if gone.is_empty() {
            Ok(())
        } else {
            Err(PublishError::Unsafe {
                code: "queue_in_use",
                message: "a queue this version removes has conversations waiting".into(),
                issues: gone,
            })
        }
    }
}

/// What becomes the next version.
struct Publish {
    document: Value,
    /// The uploads it runs with.
    plugins: BTreeMap<String, String>,
    comment: String,
    /// Production as the request saw it.
    expected: u64,
    origin: VersionOrigin,
}

fn issue(path: &str, message: String) -> Issue {
    Issue {
        path: path.to_string(),
        message,
        at: None,
    }
}

fn known_section(section: &str) -> Result<(), PublishError> {
    if diff::SECTIONS.contains(&section) {
        Ok(())
    } else {
        Err(PublishError::NotFound(format!(
            "no section `{section}` in a flow; the sections are {}",
            diff::SECTIONS.join(", ")
        )))
    }
}

/// A flow document as JSON with every default written out, so two
/// documents compare field by field.
fn normalised(flow: &Flow) -> Value {
    serde_json::to_value(flow).expect("a flow serialises")
}

/// Reads a JSON document as a flow; a type error names its path.
fn parse_value(document: Value) -> Result<Flow, PublishError> {
    let text = document.to_string();
    crate::flow::parse_all(&text).map_err(PublishError::Invalid)
}
