// SPDX-License-Identifier: MIT OR Apache-2.0
//! One run, start to summary: read the settings, scan, plan, act (fence, then finish here or
//! hand over to the split run's rest), tell.

use log::{error, info, LevelFilter};

use crate::apply::{self, Kernel, RealKernel};
use crate::options::{ctx, deadline, Mode, Options, Run, EXIT_OK, EXIT_USAGE};
use crate::romread;
use crate::scan;
use crate::sources::{self, warn_legacy};
use crate::split::settle_rest;
use crate::split::{Pending, Rest};
use crate::summary::{elapsed_ms, plural, tell, write_state, Stage};
use vfio_early_core::config::{RomWant, Settings};
use vfio_early_core::outcome::Outcome;
use vfio_early_core::plan::{self, Decision, Plan};
use vfio_early_system::files::Dir;
use vfio_early_system::kmsg::boot_start;
use vfio_early_system::kmsg::{self};
use vfio_early_system::sysfs::Root;

/// The whole run; returns the exit code. Never inlined.
#[inline(never)]
pub fn run(opts: &Options) -> i32 {
    let root = Root::new(&opts.root);
    let mut kernel = RealKernel::new(&root);
    run_split_with(opts, &mut kernel, |_, pending| {
        crate::split::hand_off(pending, &root, opts.finish_unit)
    })
}

/// `run` with the given kernel interface (tests inject faults through it); a split run goes on
/// in this process.
pub fn run_with<K: Kernel>(opts: &Options, kernel: &mut K) -> i32 {
    run_split_with(opts, kernel, |_, _| Rest::Here)
}

/// `run_with`, where `rest_goes` decides, once a split run has fenced, which process does the
/// rest (it may change the kernel in between: tests play udev there).
pub fn run_split_with<K: Kernel>(
    opts: &Options,
    kernel: &mut K,
    rest_goes: impl FnOnce(&mut K, &Pending<'_>) -> Rest,
) -> i32 {
    let start = kernel.now();
    let root = Root::new(&opts.root);
    let mut dir = None;
    match opts.mode {
        Mode::Boot => {
            if opts.split {
                kmsg::set_phase(kmsg::Phase::Fence);
            }
            let why = "boot mode refuses to act on a running system; use `vfio-early plan` to see what it would do";
            if !boot_start(&root, why) {
                // Said on stderr too: a person ran it (the kernel log may not be theirs to read).
                errln!("vfio-early: not inside an initramfs: nothing done; {why}");
                return EXIT_USAGE;
            }
            // /run is the system's own mount (trusted, as the root is); vfio-early/ below it is
            // opened without following a symlink.
            dir = Some(
                Dir::open(
                    &root.path(vfio_early_core::layout::RUN_PARENT),
                    vfio_early_core::layout::RUN_NAME,
                    true,
                )
                .map(Dir::volatile),
            );
        }
        Mode::Plan => kmsg::init(kmsg::Target::Stderr, LevelFilter::Info),
    }
    let mut run = Run {
        opts,
        root,
        start,
        dir,
        split: false,
    };
    let root = &run.root;

    let input = sources::read(root, opts.cmdline.as_deref());
    let settings = &input.settings;
    if opts.mode == Mode::Boot {
        // Started by the rdinit shim: it waits for us by this deadline, not its default.
        crate::shim::tell_deadline(settings.timeout_ms);
    }
    if settings.debug {
        log::set_max_level(LevelFilter::Debug);
    }
    for p in &input.problems.kept {
        error!("{p}");
    }
    if input.problems.dropped > 0 {
        error!("{} more input problems not shown", input.problems.dropped);
    }
    let bad = input.problems.len();

    if settings.off {
        info!("disabled by vfio-early.off; nothing done");
        return tell(&run, &input, None, bad);
    }
    if input.problems.blocked {
        error!("the settings were not read whole (see above): nothing is bound in this boot");
        return tell(&run, &input, None, bad);
    }
    if settings.entries.is_empty() {
        return tell(&run, &input, None, bad);
    }
    warn_legacy(root, &input);

    let (inv, errors) = scan::scan(root, &settings.entries);
    for e in &errors.kept {
        error!("{e}");
    }
    let plan = plan::plan(settings, &inv);
    let act = opts.mode == Mode::Boot && !settings.dry_run;
    // One slot for the outcomes, filled in place (see apply::fence).
    let mut state = vfio_early_core::outcome::Fenced::default();
    if act {
        let fenced = &mut state;
        apply_fence(&run, kernel, settings, &plan, fenced);
        let split = opts.split && !settings.sync && !fenced.items.is_empty();
        if let (true, Some(Ok(dir))) = (split, &run.dir) {
            let bdfs: heapless::Vec<
                vfio_early_core::pci::Bdf,
                { vfio_early_core::device::MAX_DEVICES },
            > = fenced.items.iter().map(|&n| plan.items[n].bdf).collect();
            let ms = elapsed_ms(run.start);
            let done = Some((&plan, &fenced.out));
            write_state(&run, &input, done, Stage::Pending(&fenced.items), ms);
            info!(
                "fenced {} device{} ({}) in {ms} ms; loading vfio-pci and checking the binds follow beside udev",
                bdfs.len(),
                plural(bdfs.len()),
                vfio_early_core::handoff::list(&bdfs)
            );
            let pending = Pending {
                dir,
                deadline: deadline(&run, settings),
                fenced: &bdfs,
                digest: input.digest,
                settings,
                inv: &inv,
                state: fenced,
            };
            if rest_goes(kernel, &pending) == Rest::Elsewhere {
                return EXIT_OK;
            }
            kmsg::set_phase(kmsg::Phase::Finish);
            run.split = true;
        }
        let mut ctx = ctx(&run, kernel, settings);
        apply::load_and_verify(&mut ctx, &plan, fenced);
        if run.split {
            settle_rest(&run, &plan, &mut fenced.out);
        }
    } else {
        for i in &plan.items {
            let _ = state.out.push(match i.decision {
                Decision::Bind { .. } => Outcome::WouldBind,
                _ => Outcome::AsPlanned,
            });
        }
    }
    let outcomes = &state.out;
    if outcomes.contains(&Outcome::Unknown) {
        error!("modprobe vfio-pci still running at the deadline: outcome unknown; it was left running (a kill between two module loads can leave a half-loaded stack) and nothing more was written");
    }
    if settings.dry_run && opts.mode == Mode::Boot {
        info!("dry run (vfio-early.dry-run): nothing written");
    }
    let scan_errors = errors.kept.len() + errors.dropped;
    tell(&run, &input, Some((&plan, outcomes)), bad + scan_errors)
}

/// The fence, with the ROM reads asked for.
pub fn apply_fence<K: Kernel>(
    run: &Run,
    kernel: &mut K,
    settings: &Settings,
    plan: &Plan,
    state: &mut vfio_early_core::outcome::Fenced,
) {
    let root = &run.root;
    let mut ctx = ctx(run, kernel, settings);
    if settings.rom == RomWant::None {
        return apply::fence(&mut ctx, plan, state, |_, _| {});
    }
    // Built into the image by the hooks: the captures already stored in /var/lib.
    let known = vfio_early_system::read::read_input_optional(
        &root.path(vfio_early_core::layout::ROMS_KNOWN),
        64 * 1024,
    )
    .ok()
    .flatten()
    .map(|i| i.text().into_owned())
    .unwrap_or_default();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    apply::fence(&mut ctx, plan, state, |ctx, fenced| {
        romread::capture_fenced(ctx, plan, fenced, &settings.rom, &known, &release)
    });
}
