//! When each image of a plan builds: as soon as its parent is built, up to `--jobs` at once,
//! each on a thread of its own. One image failing stops its descendants only (the others
//! finish); `--fail-fast` stops the whole run, running sandboxes included.
//!
//! Not for: how an image is built (`build_image`), what is printed at the end (`run`). The
//! outputs never depend on the order images finish in: the results are keyed by name, and
//! the run writes them in plan order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;

use super::{BuildContext, BuiltImage, PlanScope, build_image, pull_plan_image};
use crate::config::Parent;
use crate::emerge::run::CpuShare;
use crate::plan::{BuildKind, ImagePlan};

/// How a run shares the machine between images.
#[derive(Debug, Clone, Copy)]
pub struct Parallelism {
    /// Images built at once, at least 1 (`--jobs`, `build.parallel_images`).
    pub images: usize,
    /// The CPUs one emerge alone uses (`build.threads`, resolved): shared among the emerges
    /// that run at once.
    pub threads: u32,
    /// emerge's `--jobs` alone (`build.max_parallel_jobs`, resolved): shared likewise.
    pub emerge_jobs: u32,
    /// `--fail-fast`: the first failure stops every image, running ones included.
    pub fail_fast: bool,
}

impl Default for Parallelism {
    /// One image at a time (`gib shell`, `gib update`).
    fn default() -> Self {
        Parallelism {
            images: 1,
            threads: 1,
            emerge_jobs: 1,
            fail_fast: false,
        }
    }
}

impl Parallelism {
    /// gib.yaml's settings, `--jobs` over `build.parallel_images`, else the machine's
    /// default (see [`default_images`]).
    pub fn new(build: &crate::config::Build, jobs: Option<usize>, fail_fast: bool) -> Self {
        let cpus = crate::plan::cpu_count();
        let threads = build.threads.unwrap_or(cpus);
        let images = jobs
            .or(build.parallel_images.map(|n| n as usize))
            .unwrap_or_else(|| default_images(cpus, memory_bytes()));
        Parallelism {
            images: images.max(1),
            threads,
            emerge_jobs: build.max_parallel_jobs.unwrap_or(threads),
            fail_fast,
        }
    }
}

/// Images built at once by default: one per CPU, but no more than one per 2 GiB of memory
/// (a compiler and a linker each), and at least one. Memory unknown: the CPUs decide.
pub fn default_images(cpus: u32, memory_bytes: Option<u64>) -> usize {
    let by_cpus = cpus.max(1) as usize;
    let by_memory = memory_bytes.map_or(by_cpus, |bytes| (bytes / (2 << 30)) as usize);
    by_cpus.min(by_memory).max(1)
}

/// The machine's memory (MemTotal of /proc/meminfo), when it can be read.
fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    mem_total(&text)
}

/// MemTotal of a /proc/meminfo text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// When an image of this run was built (wall clock), for `--json`.
#[derive(Debug, Clone, Copy)]
pub struct BuildTimes {
    pub started: SystemTime,
    pub finished: SystemTime,
}

impl BuildTimes {
    /// The image's own time, from its start to its end.
    pub fn seconds(&self) -> f64 {
        self.finished
            .duration_since(self.started)
            .unwrap_or_default()
            .as_secs_f64()
    }
}

/// The images a run built, reused or pulled, by name; and those it could not.
#[derive(Debug, Default)]
pub struct PlanBuild {
    pub images: BTreeMap<String, BuiltImage>,
    /// Images taken from the registry (`--parents-from-registry`): already pushed.
    pub pulled: BTreeSet<String>,
    /// When each image started and ended (failed ones too).
    pub times: BTreeMap<String, BuildTimes>,
    /// Images whose build failed, in plan order.
    pub failed: Vec<(String, anyhow::Error)>,
    /// Images not built because an ancestor failed.
    pub skipped: BTreeSet<String>,
    /// Images `--fail-fast` stopped, running or not yet started.
    pub stopped: BTreeSet<String>,
}

impl PlanBuild {
    /// The build when every image was made; else the error of the first image that failed.
    pub fn complete(mut self) -> Result<PlanBuild> {
        if self.failed.is_empty() {
            return Ok(self);
        }
        Err(self.failed.remove(0).1)
    }
}

/// The board the image threads and the scheduler share.
#[derive(Default)]
struct Board<'p> {
    /// Not yet started, in plan order.
    waiting: Vec<&'p ImagePlan>,
    running: usize,
    done: PlanBuild,
    /// Set by the first failure under `--fail-fast`.
    stopping: bool,
}

fn lock<'b, 'p>(board: &'b Mutex<Board<'p>>) -> MutexGuard<'b, Board<'p>> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one image's thread made of it.
enum Made {
    Built(BuiltImage),
    Pulled(BuiltImage),
}

/// Build (or reuse, or pull) the images of the plan, each as soon as its parent is built, up
/// to `ctx.parallelism.images` at once; `on_built` is told of each image built or reused
/// (not pulled) with its own time, in the order they finish. An image that fails stops its
/// descendants only: the result says which failed and which were skipped
/// ([`PlanBuild::complete`] turns a failure into the error).
pub fn build_plan(
    ctx: &BuildContext<'_>,
    scope: PlanScope<'_>,
    on_built: impl FnMut(&BuiltImage, Duration) + Send,
) -> Result<PlanBuild> {
    let pulled = |image: &ImagePlan| {
        scope
            .pull_all_but
            .is_some_and(|s| !s.is_empty() && !s.contains(image.name.as_str()))
    };
    let images: Vec<&ImagePlan> = ctx
        .plan
        .images
        .iter()
        .filter(|image| scope.leave_out != Some(image.name.as_str()))
        .collect();
    // The inputs (gib.lock) are settled before the first image, so that `--locked` fails
    // before any work and every image is keyed by the same stage3 and snapshots.
    if images
        .iter()
        .any(|image| matches!(image.kind, BuildKind::Portage(_)) && !pulled(image))
    {
        ctx.resolve_inputs()?;
    }
    let at_once = ctx.parallelism.images.min(widest(&images)).max(1);

    let board = Mutex::new(Board {
        waiting: images,
        ..Board::default()
    });
    let changed = Condvar::new();
    let on_built = Mutex::new(on_built);
    std::thread::scope(|threads| {
        let mut state = lock(&board);
        loop {
            settle_blocked(&mut state, ctx.parallelism.fail_fast);
            while state.running < at_once {
                let Some(index) = state.waiting.iter().position(|i| ready(i, &state.done)) else {
                    break;
                };
                let image = state.waiting.remove(index);
                // The parent's record, for the thread to build on.
                let parents: BTreeMap<String, BuiltImage> = match &image.parent {
                    Parent::Image(name) => state
                        .done
                        .images
                        .get(name)
                        .map(|p| (name.clone(), p.clone()))
                        .into_iter()
                        .collect(),
                    _ => BTreeMap::new(),
                };
                state.running += 1;
                if at_once > 1 {
                    // Its emerge's share: the machine divided among the images running now
                    // and those ready to start beside it (an image building alone, such as
                    // the base everything waits for, gets all of it). The load average caps
                    // the whole machine when later images start beside it.
                    let ready_now = state
                        .waiting
                        .iter()
                        .filter(|i| ready(i, &state.done))
                        .count();
                    let beside = (state.running + ready_now).min(at_once);
                    let share =
                        CpuShare::of(ctx.parallelism.threads, ctx.parallelism.emerge_jobs, beside);
                    ctx.cpu_shares
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(image.name.clone(), share);
                }
                let (board, changed, on_built) = (&board, &changed, &on_built);
                let pull = pulled(image);
                threads.spawn(move || {
                    let _tag = (at_once > 1).then(|| ctx.printer.image_scope(&image.name));
                    let (started, clock) = (SystemTime::now(), Instant::now());
                    let made = make(ctx, image, &parents, pull);
                    let mut state = lock(board);
                    state.running -= 1;
                    let times = BuildTimes {
                        started,
                        finished: SystemTime::now(),
                    };
                    state.done.times.insert(image.name.clone(), times);
                    if let Ok(Made::Built(result)) = &made {
                        let mut on_built = on_built.lock().unwrap_or_else(PoisonError::into_inner);
                        on_built(result, clock.elapsed());
                    }
                    record(&mut state, &image.name, made, ctx.parallelism.fail_fast);
                    changed.notify_all();
                });
            }
            if state.waiting.is_empty() && state.running == 0 {
                break;
            }
            if state.running == 0 {
                // Nothing runs and nothing can start: a parent the plan does not hold.
                for image in std::mem::take(&mut state.waiting) {
                    let err = anyhow::anyhow!(
                        "gib bug: the parent of image {} is not in the plan",
                        image.name
                    );
                    state.done.failed.push((image.name.clone(), err));
                }
                break;
            }
            state = changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    });
    let mut done = board
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .done;
    // Failures in plan order, whichever failed first: the run's error is the same every time.
    let order = ctx.plan.order();
    done.failed
        .sort_by_key(|(name, _)| order.iter().position(|n| n == name));
    Ok(done)
}

/// Build (or pull) one image on its parent's record. A panic (a bug) fails this image,
/// rather than leaving the scheduler waiting for a thread that never reports.
fn make(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parents: &BTreeMap<String, BuiltImage>,
    pull: bool,
) -> Result<Made> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if pull {
            pull_plan_image(ctx, image).map(Made::Pulled)
        } else {
            build_image(ctx, image, parents).map(Made::Built)
        }
    }))
    .unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "gib bug: the build of image {} panicked",
            image.name
        ))
    })
}

/// Put what one image's thread made on the board; the first failure under `--fail-fast`
/// stops every sandbox, and what it ends counts as stopped, not failed.
fn record(state: &mut Board<'_>, name: &str, made: Result<Made>, fail_fast: bool) {
    let name = name.to_string();
    match made {
        Ok(Made::Built(result)) => {
            state.done.images.insert(name, result);
        }
        Ok(Made::Pulled(result)) => {
            state.done.pulled.insert(name.clone());
            state.done.images.insert(name, result);
        }
        Err(_) if state.stopping => {
            state.done.stopped.insert(name);
        }
        Err(err) => {
            state.done.failed.push((name, err));
            if fail_fast {
                state.stopping = true;
                crate::sandbox::stop_all();
            }
        }
    }
}

/// Whether `image` can start: its parent (when it is one of the plan's) is built.
fn ready(image: &ImagePlan, done: &PlanBuild) -> bool {
    match &image.parent {
        Parent::Image(name) => done.images.contains_key(name),
        Parent::Scratch | Parent::Registry(_) => true,
    }
}

/// Take off the waiting list the images that can no longer be built: those whose parent
/// failed or was skipped (skipped), and all of them once `--fail-fast` is stopping (stopped).
fn settle_blocked(state: &mut Board<'_>, fail_fast: bool) {
    if fail_fast && state.stopping {
        for image in std::mem::take(&mut state.waiting) {
            state.done.stopped.insert(image.name.clone());
        }
        return;
    }
    // Plan order puts parents first, so one pass reaches every descendant.
    let mut still = Vec::new();
    for image in std::mem::take(&mut state.waiting) {
        let blocked = match &image.parent {
            Parent::Image(name) => {
                state.done.skipped.contains(name)
                    || state.done.failed.iter().any(|(failed, _)| failed == name)
            }
            _ => false,
        };
        if blocked {
            state.done.skipped.insert(image.name.clone());
        } else {
            still.push(image);
        }
    }
    state.waiting = still;
}

/// The most images of `images` that can build at the same time: the images no other image
/// of the list builds on (parents form trees, so the leaves are the widest set).
fn widest(images: &[&ImagePlan]) -> usize {
    let parents: BTreeSet<&str> = images
        .iter()
        .filter_map(|image| match &image.parent {
            Parent::Image(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    images
        .iter()
        .filter(|image| !parents.contains(image.name.as_str()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_follows_cpus_and_memory() {
        const GIB: u64 = 1 << 30;
        assert_eq!(default_images(8, Some(32 * GIB)), 8);
        assert_eq!(default_images(32, Some(16 * GIB)), 8);
        assert_eq!(default_images(4, Some(GIB)), 1);
        assert_eq!(default_images(0, None), 1);
        assert_eq!(default_images(6, None), 6);
    }

    #[test]
    fn meminfo_total() {
        let text = "MemTotal:       24576000 kB\nMemFree:          100 kB\n";
        assert_eq!(mem_total(text), Some(24576000 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }
}
