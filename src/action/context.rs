//! What an action works through: its targets, their outcomes, batching and the dry-run plan.
//!
//! The runner groups valid input objects into [`Target`]s — one per distinct (type, normalised
//! value), so duplicates are sent once and every copy gets the outcome. An action records one
//! outcome per target; a failure always wins over a success recorded earlier, so an object is
//! only `succeeded` when every request made for it succeeded. [`RunContext::batches`] runs one
//! request per batch on the client's workers and fails the targets of a batch whose request
//! failed — with that request's own failure, so an object's error always names the request made
//! for it. A refusal (4xx) or an unreadable answer (`{"data": null}`, an HTML page with status
//! 200) fails only its batch, and the other batches go on. A failure that would fail every later
//! request too (credentials, an unavailable console, the deadline, a redirect) becomes the run
//! error, and no further batch is started.
//!
//! This module does not validate input (see `request`) and does not write the result document
//! (see `runner`).

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::ApiClient;
use crate::api::chunk_for_query;
use crate::connection::LookupValues;
use crate::envelope::{InputObject, ObjectView};
use crate::error::{ErrorCode, Failure};
use crate::indicator::IndicatorType;
use crate::log;
use crate::result::{AddedAttribute, PlannedRequest, Warning};

/// Progress lines logged per phase of batches, at most (plus the last).
const PROGRESS_LINES: usize = 20;

/// Index of a target in [`RunContext::targets`].
pub type TargetId = usize;

/// The targets a write batch acts for, each once, in order: a batch of ids names every target
/// that owns one of them, and several ids often share a target.
pub fn distinct_targets(targets: impl IntoIterator<Item = TargetId>) -> Vec<TargetId> {
    targets
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The ids of the things a write acts on (list entries, IOCs, agents), each once with every
/// target that found it, in target order so that batches stay deterministic. One thing can be
/// found by two targets (an entry carrying both the SHA-1 and the SHA-256 of a file, an agent
/// behind two addresses): its id is sent once, and a failed request fails both. `found` is
/// each target with the ids of what it found.
pub fn ids_with_owners<'a, Ids: IntoIterator<Item = &'a str>>(
    found: impl IntoIterator<Item = (TargetId, Ids)>,
) -> Vec<(&'a str, Vec<TargetId>)> {
    let mut owned: Vec<(&str, Vec<TargetId>)> = Vec::new();
    let mut position: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (target, ids) in found {
        for id in ids {
            match position.get(id) {
                Some(&at) => owned[at].1.push(target),
                None => {
                    position.insert(id, owned.len());
                    owned.push((id, vec![target]));
                }
            }
        }
    }
    owned
}

/// One distinct indicator of the run, and the input objects that carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: IndicatorType,
    /// Normalised value, as sent to SentinelOne.
    pub value: String,
    /// Indexes of the input objects with this type and value, ascending.
    pub indices: Vec<usize>,
}

/// The method of a write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    Post,
    /// `DELETE` with a JSON body, as SentinelOne's bulk deletes expect.
    Delete,
}

/// One write request of a batch, its body anything serializable (streamed when sent).
#[derive(Debug, Clone)]
pub struct Write<'p, T = Value> {
    pub method: WriteMethod,
    pub path: &'p str,
    pub body: T,
}

impl<'p, T: Serialize> Write<'p, T> {
    pub fn post(path: &'p str, body: T) -> Self {
        Self {
            method: WriteMethod::Post,
            path,
            body,
        }
    }

    pub fn delete(path: &'p str, body: T) -> Self {
        Self {
            method: WriteMethod::Delete,
            path,
            body,
        }
    }
}

/// What became of one write request: only planned (dry run), or sent and answered.
#[derive(Debug)]
pub enum Reply<A> {
    Planned,
    Sent(Result<A, Failure>),
}

impl<A> Reply<A> {
    /// The answer (`None` for a planned request); a refusal is the error.
    pub fn answer(self) -> Result<Option<A>, Failure> {
        match self {
            Self::Planned => Ok(None),
            Self::Sent(answer) => answer.map(Some),
        }
    }
}

/// How a detail tells the writes: done, or (dry run) only planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tense {
    Done,
    Planned,
}

impl Tense {
    /// `done` or `planned`, the wording of this tense.
    pub fn pick<T>(self, done: T, planned: T) -> T {
        match self {
            Self::Done => done,
            Self::Planned => planned,
        }
    }
}

/// The outcome recorded for a target.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pending,
    Succeeded {
        detail: String,
        attributes: Vec<AddedAttribute>,
    },
    Skipped {
        detail: String,
    },
    Failed(Failure),
}

/// Everything a run produced, handed back to the runner.
#[derive(Debug, Default)]
pub struct RunOutput {
    pub outcomes: Vec<Outcome>,
    pub plan: Vec<PlannedRequest>,
    pub run_error: Option<Failure>,
    pub records: Vec<Value>,
    pub produced: Vec<Value>,
    pub state: Option<Value>,
    pub warnings: Vec<Warning>,
}

/// The state of one run.
pub struct RunContext<'a> {
    client: &'a ApiClient,
    objects: &'a [InputObject],
    targets: Vec<Target>,
    now: DateTime<Utc>,
    dry_run: bool,
    input_state: Option<&'a Value>,
    lookup_values: LookupValues,
    output: RunOutput,
}

impl<'a> RunContext<'a> {
    pub fn new(
        client: &'a ApiClient,
        objects: &'a [InputObject],
        targets: Vec<Target>,
        now: DateTime<Utc>,
        dry_run: bool,
        input_state: Option<&'a Value>,
    ) -> Self {
        let outcomes = vec![Outcome::Pending; targets.len()];
        Self {
            client,
            objects,
            targets,
            now,
            dry_run,
            input_state,
            lookup_values: LookupValues::Many,
            output: RunOutput {
                outcomes,
                ..RunOutput::default()
            },
        }
    }

    /// Sets how many values each look-up request carries (`lookup_values_per_request`).
    pub fn with_lookup_values(mut self, lookup_values: LookupValues) -> Self {
        self.lookup_values = lookup_values;
        self
    }

    pub fn client(&self) -> &'a ApiClient {
        self.client
    }

    /// The run's clock: `run.now` when the envelope pins it.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The run deadline (`run.deadline_seconds` from the start), for actions that wait: no
    /// request starts after it.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.client.deadline()
    }

    /// The checkpoint the previous run returned (ingest actions).
    pub fn input_state(&self) -> Option<&'a Value> {
        self.input_state
    }

    /// How many objects the envelope held (valid or not); zero lets an action tell an empty
    /// envelope from one whose objects were all skipped or invalid.
    pub fn object_count(&self) -> usize {
        self.objects.len()
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    pub fn target(&self, id: TargetId) -> &Target {
        &self.targets[id]
    }

    /// The first input object carrying target `id`.
    pub fn object(&self, id: TargetId) -> &'a InputObject {
        &self.objects[self.targets[id].indices[0]]
    }

    /// The fields of the first input object carrying target `id`, read from its text on each
    /// call (they are not kept: see [`InputObject`]).
    pub fn view(&self, id: TargetId) -> ObjectView {
        // Targets are made only from objects whose view was read, so the fallback is unreachable.
        self.object(id).view().unwrap_or_default()
    }

    /// The fields of every input object carrying target `id`, in input order: for actions that
    /// read per-object data beyond the value (attributes), where copies may differ.
    pub fn views(&self, id: TargetId) -> impl Iterator<Item = ObjectView> + '_ {
        let objects = self.objects;
        self.targets[id]
            .indices
            .iter()
            .filter_map(move |index| objects[*index].view().ok())
    }

    /// Targets that have no outcome yet, in order.
    pub fn pending(&self) -> Vec<TargetId> {
        (0..self.targets.len())
            .filter(|id| self.is_pending(*id))
            .collect()
    }

    pub fn is_pending(&self, id: TargetId) -> bool {
        matches!(self.output.outcomes[id], Outcome::Pending)
    }

    /// Whether details tell what was done or (dry run) what would be done.
    pub fn tense(&self) -> Tense {
        if self.dry_run {
            Tense::Planned
        } else {
            Tense::Done
        }
    }

    /// Records success, unless the target already has an outcome. A dry run adds no
    /// attributes: nothing was written that they could report.
    pub fn succeed(
        &mut self,
        id: TargetId,
        detail: impl Into<String>,
        attributes: Vec<AddedAttribute>,
    ) {
        if self.is_pending(id) {
            let attributes = if self.dry_run { Vec::new() } else { attributes };
            self.output.outcomes[id] = Outcome::Succeeded {
                detail: detail.into(),
                attributes,
            };
        }
    }

    /// Records a skip, unless the target already has an outcome.
    pub fn skip(&mut self, id: TargetId, detail: impl Into<String>) {
        if self.is_pending(id) {
            self.output.outcomes[id] = Outcome::Skipped {
                detail: detail.into(),
            };
        }
    }

    /// Records a failure; it replaces a success recorded earlier, never an earlier failure.
    pub fn fail(&mut self, id: TargetId, failure: Failure) {
        if !matches!(self.output.outcomes[id], Outcome::Failed(_)) {
            self.output.outcomes[id] = Outcome::Failed(failure);
        }
    }

    /// Adds a write to the dry-run plan.
    fn plan(&mut self, method: &str, path: &str, body: Option<Value>, targets: &[TargetId]) {
        let mut objects: Vec<usize> = targets
            .iter()
            .flat_map(|id| self.targets[*id].indices.iter().copied())
            .collect();
        objects.sort_unstable();
        objects.dedup();
        self.output.plan.push(PlannedRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: Vec::new(),
            body,
            objects,
        });
    }

    pub fn record(&mut self, record: Value) {
        self.output.records.push(record);
    }

    pub fn produce(&mut self, object: Value) {
        self.output.produced.push(object);
    }

    pub fn set_state(&mut self, state: Value) {
        self.output.state = Some(state);
    }

    pub fn warn(&mut self, warning: Warning) {
        self.output.warnings.push(warning);
    }

    /// The error that ended the run, if one did.
    pub fn run_error(&self) -> Option<&Failure> {
        self.output.run_error.as_ref()
    }

    /// Groups `ids` so that each group's values, comma-joined, fit in `budget` bytes of a
    /// multi-valued query parameter; with `lookup_values_per_request = one`, each value is a
    /// group of its own, for a console that reads a comma-separated `__contains` value as one
    /// text (see `s1-actions probe`).
    pub fn query_chunks(&self, ids: &[TargetId], budget: usize) -> Vec<Vec<TargetId>> {
        if self.lookup_values == LookupValues::One {
            return ids.iter().map(|id| vec![*id]).collect();
        }
        let values: Vec<&str> = ids
            .iter()
            .map(|id| self.targets[*id].value.as_str())
            .collect();
        let mut start = 0;
        chunk_for_query(&values, budget)
            .into_iter()
            .map(|chunk| {
                let group = ids[start..start + chunk.len()].to_vec();
                start += chunk.len();
                group
            })
            .collect()
    }

    /// Sends one request (or one paged read) per batch on the client's workers, and returns each
    /// batch's result in order: `None` where the batch failed, in which case every target
    /// `targets_of(batch)` names has been failed with the error.
    ///
    /// A run-ending failure (see [`Failure::ends_run`]) becomes the run error; batches not yet
    /// started then fail with it, and so does every later call. Any other failure (a refusal,
    /// an unreadable answer) fails only the targets of its own batch.
    pub fn batches<B: Sync, R: Send>(
        &mut self,
        phase: &str,
        batches: &[B],
        targets_of: impl Fn(&B) -> Vec<TargetId>,
        work: impl Fn(&ApiClient, &B) -> Result<R, Failure> + Sync,
    ) -> Vec<Option<R>> {
        let client = self.client;
        let total = batches.len();
        let results: Vec<Result<R, Failure>> = match self.output.run_error.clone() {
            Some(run_error) => batches.iter().map(|_| Err(run_error.clone())).collect(),
            None => {
                let done = AtomicUsize::new(0);
                // About twenty progress lines per phase, however many batches it has.
                let every = total.div_ceil(PROGRESS_LINES).max(1);
                client.parallel(batches, |batch| {
                    let result = work(client, batch);
                    let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if done % every == 0 || done == total {
                        log::info(
                            "progress",
                            "",
                            json!({ "phase": phase, "done": done, "total": total }),
                        );
                    }
                    result
                })
            }
        };
        batches
            .iter()
            .zip(results)
            .map(|(batch, result)| match result {
                Ok(value) => Some(value),
                Err(failure) => {
                    if failure.ends_run() && self.output.run_error.is_none() {
                        self.output.run_error = Some(failure.clone());
                    }
                    for id in targets_of(batch) {
                        self.fail(id, failure.clone());
                    }
                    None
                }
            })
            .collect()
    }

    /// Sends the write `request(batch)` of every batch on the client's workers and reads each
    /// answer (as `A`: only the fields it names) with `read`; in a dry run, adds each request to
    /// the plan instead and reads [`Reply::Planned`]. Returns each batch's result as
    /// [`RunContext::batches`] does: `None` where the batch failed, its targets failed with
    /// the error `read` returned.
    ///
    /// The request is made by the worker that sends it, so bodies are not all held at once.
    pub fn write<'p, B: Sync, T: Serialize, A: DeserializeOwned, R: Send>(
        &mut self,
        phase: &str,
        batches: &[B],
        targets_of: impl Fn(&B) -> Vec<TargetId>,
        request: impl Fn(&B) -> Write<'p, T> + Sync,
        read: impl Fn(&B, Reply<A>) -> Result<R, Failure> + Sync,
    ) -> Vec<Option<R>> {
        if !self.dry_run {
            return self.batches(phase, batches, targets_of, |client, batch| {
                read(batch, Reply::Sent(send(client, request(batch))))
            });
        }
        batches
            .iter()
            .map(|batch| {
                let write = request(batch);
                let method = match write.method {
                    WriteMethod::Post => "POST",
                    WriteMethod::Delete => "DELETE",
                };
                let body = serde_json::to_value(&write.body).unwrap_or_default();
                self.plan(method, write.path, Some(body), &targets_of(batch));
                match read(batch, Reply::Planned) {
                    Ok(value) => Some(value),
                    Err(failure) => {
                        for id in targets_of(batch) {
                            self.fail(id, failure.clone());
                        }
                        None
                    }
                }
            })
            .collect()
    }

    /// Ends the run with `failure` (if none ended it before).
    pub fn end_run(&mut self, failure: Failure) {
        if self.output.run_error.is_none() {
            self.output.run_error = Some(failure);
        }
    }

    /// Hands the outcomes back; targets still pending fail with the run error, or as an internal
    /// error when the action forgot them.
    pub fn finish(self) -> RunOutput {
        self.finish_with_targets().0
    }

    /// As [`RunContext::finish`], handing the targets back too (the runner needs them to write
    /// the result, and they are not copied for the run).
    pub fn finish_with_targets(mut self) -> (RunOutput, Vec<Target>) {
        let fallback = self.output.run_error.clone().unwrap_or_else(|| {
            Failure::internal("The action finished without reporting an outcome for this object")
        });
        for outcome in &mut self.output.outcomes {
            if matches!(outcome, Outcome::Pending) {
                *outcome = Outcome::Failed(fallback.clone());
            }
        }
        (self.output, self.targets)
    }
}

/// Sends one write and reads its answer as `A`.
fn send<T: Serialize, A: DeserializeOwned>(
    client: &ApiClient,
    write: Write<'_, T>,
) -> Result<A, Failure> {
    match write.method {
        WriteMethod::Post => client.post_as(write.path, &write.body),
        WriteMethod::Delete => {
            let answer = client.delete(write.path, &write.body)?;
            serde_json::from_value(answer).map_err(|err| {
                Failure::new(
                    ErrorCode::UpstreamBadResponse,
                    format!(
                        "SentinelOne's answer to DELETE {} could not be read: {err}",
                        write.path
                    ),
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::ClientSettings;
    use crate::connection::{BaseUrl, Secret};
    use crate::result::AddedAttribute;

    /// A client of a console nobody answers for: a dry run must not need one.
    fn unreachable_client() -> ApiClient {
        ApiClient::new(ClientSettings {
            base: BaseUrl::parse("http://127.0.0.1:9").unwrap(),
            token: Secret::new("token"),
            verify_tls: true,
            ca_bundle: None,
            proxy: None,
            request_timeout: Duration::from_secs(1),
            max_retries: 0,
            requests_per_second: 0.0,
            max_concurrency: 1,
            deadline: None,
            max_response_bytes: 1 << 20,
        })
        .unwrap()
    }

    fn target(value: &str, indices: Vec<usize>) -> Target {
        Target {
            kind: IndicatorType::Sha1,
            value: value.into(),
            indices,
        }
    }

    #[test]
    fn a_dry_run_plans_every_write_sends_none_and_adds_no_attribute() {
        let client = unreachable_client();
        let targets = vec![target("a", vec![0, 2]), target("b", vec![1])];
        let mut ctx = RunContext::new(&client, &[], targets, Utc::now(), true, None);
        assert_eq!(ctx.tense(), Tense::Planned);
        let batches: [Vec<TargetId>; 2] = [vec![0, 1], vec![1]];
        let answers = ctx.write(
            "write",
            &batches,
            Clone::clone,
            |batch| Write::post("/things", json!({ "ids": batch })),
            |_, reply: Reply<Value>| Ok(matches!(reply, Reply::Planned)),
        );
        assert_eq!(answers, [Some(true), Some(true)]);
        ctx.succeed(0, "would be done", vec![AddedAttribute::new("A", "1")]);
        let output = ctx.finish();
        assert_eq!(client.metrics().http_requests, 0);
        let planned: Vec<(&str, &[usize])> = output
            .plan
            .iter()
            .map(|request| (request.method.as_str(), request.objects.as_slice()))
            .collect();
        assert_eq!(planned, [("POST", &[0, 1, 2][..]), ("POST", &[1][..])]);
        assert_eq!(output.plan[1].body, Some(json!({ "ids": [1] })));
        assert!(matches!(
            &output.outcomes[0],
            Outcome::Succeeded { attributes, .. } if attributes.is_empty()
        ));
    }
}
