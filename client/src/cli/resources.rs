//! `ripple allocate`, `plan`, `release`, `allocations`, `available`, `usage`: requests and their tables.
use super::*;

pub(super) fn allocate_request(args: &AllocateArgs) -> Result<AllocateRequest, ConfigError> {
    let resource_type: ResourceType = parse_name("resource type", &args.resource_type)?;
    let amounts = Capacity {
        cpu_cores: args.cpu.unwrap_or(0),
        memory_gb: args.memory_gb.unwrap_or(0),
        gpu_slots: args.gpus.unwrap_or(0),
        vram_gb: args.vram_gb.unwrap_or(0),
        storage_gb: args.storage_gb.map_or(0, u64::from),
        model_slots: 0,
    };
    let requirements = crate::resources::requirements(amounts, resource_type, args.model.as_deref());
    Ok(AllocateRequest {
        resource_type,
        requirements,
        model_name: args.model.clone(),
        locality_preference: parse_name("locality", &args.locality)?,
        duration_secs: args.duration,
        workload_class: args.class.clone(),
    })
}

pub(super) fn render_plan(plan: &Plan) -> String {
    let mut out = format!(
        "{} for a {} task ({}), locality {}\n",
        plan.algorithm,
        plan.task.workload_class,
        describe_capacity(&plan.task.requirements),
        serde_plain(&plan.task.locality_preference)
    );
    let mut rows = vec![["RANK", "NODE", "SCORE", "LOCALITY", "PACKING", "POOL", "CHEAP", "SPEED", "FREE AFTER"]
        .map(String::from)
        .to_vec()];
    for (i, c) in plan.candidates.iter().enumerate() {
        rows.push(vec![
            (i + 1).to_string(),
            format!("{} {}", c.name, short(&c.agent)),
            format!("{:.3}", c.score),
            format!("{:.1}", c.locality),
            format!("{:.3}", c.packing),
            if c.preferred_pool { "preferred" } else { "fallback" }.into(),
            format!("{:.1}", c.cheapness),
            format!("{:.2}", c.speed),
            describe_capacity(&c.free_after),
        ]);
    }
    out.push_str(&table(&rows));
    for f in &plan.filtered {
        out.push_str(&format!("filtered  {} {}: {}\n", f.name, short(&f.agent), f.reason));
    }
    out
}

pub(super) fn render_allocation(a: &Allocation) -> String {
    let mut out = format!(
        "allocation {}\nnode       {} ({})\namounts    {}\nendpoint   {}\nexpires    {}\n",
        a.allocation_id,
        a.node_name,
        a.node_id,
        describe_capacity(&a.amounts),
        if a.endpoint.is_empty() { "-" } else { &a.endpoint },
        a.expires_at
    );
    let note = |t: &crate::resources::Attempt| t.note.as_ref().map(|n| format!(" (direct: {n})")).unwrap_or_default();
    if let Some(granted) = a.attempts.iter().find(|t| t.outcome == "granted") {
        out.push_str(&format!("answered   {}{}\n", granted.path, note(granted)));
    }
    for attempt in a.attempts.iter().filter(|t| t.outcome != "granted") {
        let (name, path, outcome) = (&attempt.node_name, &attempt.path, &attempt.outcome);
        out.push_str(&format!("tried      {name} ({path}): {outcome}{}\n", note(attempt)));
    }
    out
}

pub(super) fn render_allocations(rows: &Vec<AllocationRow>) -> String {
    let mut table_rows =
        vec![["SIDE", "STATUS", "TYPE", "AMOUNTS", "PROVIDER", "REQUESTER", "ALLOCATION", "EXPIRES", "BILLED"]
            .map(String::from)
            .to_vec()];
    for r in rows {
        table_rows.push(vec![
            r.side.clone(),
            r.reason.as_ref().map_or(r.status.clone(), |reason| format!("{} ({reason})", r.status)),
            serde_plain(&r.resource_type),
            describe_capacity(&r.requirements),
            short(&r.provider),
            short(&r.requester),
            r.allocation_id.clone().unwrap_or_else(|| "-".into()),
            r.expires_at.clone().unwrap_or_else(|| "-".into()),
            r.receipt
                .as_ref()
                .map_or("-".into(), |rc| format!("{} s{}", rc.held_secs, if rc.acknowledged { ", acked" } else { "" })),
        ]);
    }
    format!("{}{} allocation(s)\n", table(&table_rows), rows.len())
}

pub(super) fn render_available(rows: &Vec<Available>) -> String {
    let mut table_rows =
        vec![["NODE", "STATE", "REGION", "FREE", "OFFERED", "ACTIVE", "MODELS"].map(String::from).to_vec()];
    for r in rows {
        table_rows.push(vec![
            format!("{}{} {}", r.node_name, if r.is_self { " (self)" } else { "" }, short(&r.node_id)),
            r.state.clone(),
            if r.region.is_empty() { "-".into() } else { r.region.clone() },
            describe_capacity(&r.free),
            describe_capacity(&r.offered),
            r.active_allocations.to_string(),
            if r.models.is_empty() { "-".into() } else { r.models.join(", ") },
        ]);
    }
    format!("{}{} provider(s)\n", table(&table_rows), rows.len())
}

pub(super) fn render_usage(u: &UsageSummary) -> String {
    let line = |s: &resource_mesh_types::ResourceSeconds| {
        format!(
            "cpu core-s {}, memory GB-s {}, GPU slot-s {}, VRAM GB-s {}, storage GB-s {}, model slot-s {}",
            s.cpu_core_seconds,
            s.memory_gb_seconds,
            s.gpu_slot_seconds,
            s.vram_gb_seconds,
            s.storage_gb_seconds,
            s.model_slot_seconds
        )
    };
    format!(
        "provided  {} receipt(s), {} acknowledged: {}\nused      {} receipt(s): {}\n",
        u.provided_receipts,
        u.provided_acknowledged,
        line(&u.provided),
        u.used_receipts,
        line(&u.used)
    )
}
