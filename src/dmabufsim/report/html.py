"""A self-contained HTML page of one recorded execution, and an index of pages.

What ``ftrace`` + ``kernelshark`` would show of the run, as one file that
opens from disk in any current browser: one lane per thread over the
execution's steps, lock holds as bars, waits as hatched bars with an arrow
to the holder, ``dma_fence_signal`` / ``complete`` / ``wake_up`` joined by
arrows to the threads that waited, DMA accesses and ``__free_page`` on
memory rows, the finding's events highlighted and its kernel-style report
(with lockdep's CPU0/CPU1 table) beside the lanes, a step scrubber and the
replay command with a copy button.

Rules:

* R1: one file, no network: all CSS and JavaScript are inline, no fonts,
  images or scripts are fetched; the page is written with the standard
  library's string templates (no templating dependency) and vanilla
  JavaScript (no library).
* R2: one lane per thread of the execution (``class="lane"``,
  ``data-tid``), in tid order, plus a ``timers / interrupts`` lane for the
  events of no thread (a timer firing: an interrupt arrival); every event
  drawn is one element ``class="ev"`` with ``data-i`` (its index in the
  trace). The same execution gives the same page, byte for byte.
* R3: lock holds and waits are read exactly as the Perfetto trace reads
  them (:func:`~dmabufsim.report.events.pair_locks`, the lock_stat hooks
  ``lock_contended`` / ``lock_acquired`` / ``lock_failed``): a wait is a
  hatched bar ``class="wait"`` and never a hold; a hold is ``class="hold"``
  coloured by lock class from the Okabe-Ito palette (safe for the common
  colour-vision deficiencies) and labelled with the class name, so colour
  is never the only cue.
* R4: memory rows. ``__free_page`` and the other page operations name the
  page (one row per page, ``data-page``, named by its pfn when the
  allocator is known; an operation declared on the page's reference count,
  ``get_page`` / ``put_page``, on the page's row); a DMA access names the IOMMU domain it went
  through (one row per domain) and is drawn on the row of every frame it
  reached, as the translation at that step resolved it
  (:func:`dma_frames`; and on the page a finding names,
  ``details["pfn"]``), so "freed here, written there" is one row, in trace
  order.
* R5: the finding's events carry ``class="ev hit"`` and a visible marker,
  not only a colour: the events of its step on its threads, or, for a
  finding raised before the point of the operation that triggers it
  (lockdep, ``might_sleep``), each of its threads' next event; for a
  deadlock, the last lock attempt of each blocked thread.
* R7: the scheduler's marks (:class:`~dmabufsim.kernel.trace.SchedMark`):
  the last event a thread ran before it lost the CPU carries the reason --
  a preemption (``class="ev pre"``, a dashed "P") is told from a block
  (``class="ev blk"``, a filled "Z"; its words name what it sleeps on) by
  letter and shape, not colour (a class on the event, not an element of
  its own: a lock-heavy 10,000-event page has ~8,000 switches). An
  interrupt handler's lane says ``(hardirq)`` / ``(softirq)`` and its
  arrival (the ``spawn`` of ``raise_irq``, or its first event when a timer
  raised it) is an element ``class="mark irq"`` on that lane.
* R8: every event's call site (trace T4) is on the page, each distinct
  stack once (``stk``); hovering an event, focusing it or stepping to it
  with the keys shows it, kernel-style ("Call Trace:"), in a tooltip
  (``id="tip"``, ``role="tooltip"``) and in the event panel.
* R6: an execution of more than :data:`MAX_DRAWN` events is summarised,
  never silently truncated: the page draws the :data:`MAX_DRAWN` events
  ending just after the last finding (or the end), says so in a visible
  note (``id="summary-note"``) and tabulates the events left out, per
  thread.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

from ..kernel.errors import UsageError
from ..kernel.execution import Execution
from ..kernel.findings import Finding
from ..kernel.trace import Event, LockMark, counted_oid, part_owner
from .events import SIGNAL_OPS, WAIT_OPS, attempts, is_acquire, is_dma, is_release, lock_name, pair_locks

#: Pixels per event in step mode.
PX = 10
#: Height of a lane (px).
LANE_H = 24
#: Events drawn at most (R6); the documented size bound (2 MB) holds up to it.
MAX_DRAWN = 10_000
#: Okabe-Ito: distinguishable with protanopia, deuteranopia and tritanopia.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
#: Operations on a page object (mm/page.py).
PAGE_OPS = frozenset({"free_page", "get_page", "put_page", "set_page_dirty", "mark_page_accessed"})


@dataclass(frozen=True)
class Bar:
    """A hold or a wait: lane (tid), start/stop in event-index units, lock class, kind."""

    tid: int
    start: float
    stop: float
    cls: str
    kind: str
    obj: int
    attempt: int
    note: str


def _mark_x(m: LockMark) -> float:
    return m.pos - 0.5


def lock_bars(events: Sequence[Event], marks: Sequence[LockMark] | None) -> list[Bar]:
    """Holds and waits of a recorded execution, in event-index units (R3)."""
    end = float(len(events))
    outcome = attempts(events, marks)
    bars: list[Bar] = []
    for acq, rel in pair_locks(events, marks):
        ev = events[acq]
        start = float(acq)
        stop = float(rel) + 0.5 if rel is not None else end
        a = outcome.get(acq)
        if a is not None and a.contended is not None:
            if a.acquired is None:
                bars.append(Bar(ev.tid, start, end, lock_name(ev), "wait", ev.obj, acq,
                                "never acquired (still waiting when the execution ended)"))
                continue
            got = _mark_x(a.acquired)
            bars.append(Bar(ev.tid, start, got, lock_name(ev), "wait", ev.obj, acq, "acquired after waiting"))
            start = got
        bars.append(Bar(ev.tid, start, max(start + 0.5, stop), lock_name(ev), "hold", ev.obj, acq,
                        "held when the execution ended" if rel is None else ""))
    for acq, a in outcome.items():
        if a.failed is not None and a.contended is not None:
            ev = events[acq]
            bars.append(Bar(ev.tid, float(acq), _mark_x(a.failed), lock_name(ev), "wait", ev.obj, acq,
                            "gave up (lock_failed)"))
    bars.sort(key=lambda b: (b.start, b.tid, b.kind, b.attempt))
    return bars


def signal_arrows(events: Sequence[Event]) -> list[tuple[int, int, int]]:
    """``(signal index, waiter tid, waiter's next event index or -1)``: who woke whom (perfetto's rule)."""
    waiting_on: dict[int, int] = {}
    pending: dict[int, list[int]] = {}
    out: list[tuple[int, int, int]] = []
    for i, ev in enumerate(events):
        if ev.tid < 0:
            continue
        for s in pending.pop(ev.tid, ()):
            out.append((s, ev.tid, i))
        if ev.op in WAIT_OPS:
            waiting_on[ev.tid] = ev.obj
        elif waiting_on.get(ev.tid) == ev.obj and ev.op not in SIGNAL_OPS:
            del waiting_on[ev.tid]
        if ev.op in SIGNAL_OPS:
            for w in sorted(t for t, o in waiting_on.items() if o == ev.obj and t != ev.tid):
                pending.setdefault(w, []).append(i)
                del waiting_on[w]
    for w in sorted(pending):
        out.extend((s, w, -1) for s in pending[w])
    out.sort()
    return out


def wait_arrows(bars: Sequence[Bar]) -> list[tuple[Bar, Bar]]:
    """``(wait, hold)``: each wait joined to the hold of its lock by another thread when the wait began."""
    holds: dict[int, list[Bar]] = {}
    for b in bars:
        if b.kind == "hold":
            holds.setdefault(b.obj, []).append(b)
    out = []
    for w in bars:
        if w.kind != "wait":
            continue
        for h in holds.get(w.obj, ()):
            if h.tid != w.tid and h.start <= w.start < h.stop:
                out.append((w, h))
                break
    return out


#: Findings raised before the scheduling point of the operation that triggers them: lockdep's
#: ``lock_acquire`` and ``might_sleep`` run before the lock's point, so the operation is the
#: thread's next event after the finding's step.
PRE_POINT_KINDS = frozenset({"circular-locking", "recursive-locking", "sleep-in-atomic", "ww-usage"})


def finding_events(events: Sequence[Event], f: Finding) -> list[int]:
    """The events of a finding (R5): the events of its step on its threads, or, for a finding raised
    before its operation's point (:data:`PRE_POINT_KINDS`), each thread's next event."""
    tids = {t.tid for t in f.threads}
    if f.kind in PRE_POINT_KINDS and tids:
        nxt: dict[int, int] = {}
        for i, ev in enumerate(events):
            if ev.tid in tids and ev.step > f.step and ev.tid not in nxt:
                nxt[ev.tid] = i
        if nxt:
            return sorted(nxt.values())
    hits = [i for i, ev in enumerate(events) if ev.step == f.step and ev.tid >= 0]
    named = [i for i in hits if events[i].tid in tids]
    if f.kind == "deadlock" and not named:
        return hits
    # A deadlock's blocked threads: their last lock attempts are the finding.
    if f.kind == "deadlock":
        last: dict[int, int] = {}
        for i, ev in enumerate(events):
            if ev.tid in tids and is_acquire(ev.op):
                last[ev.tid] = i
        return sorted(set(named) | set(last.values()))
    return named or hits


#: The frame accesses a DMA step makes once the IOMMU translated its address (``Page.read`` / ``Page.write``).
FRAME_OPS = frozenset({"page_read", "page_write"})


def dma_frames(events: Sequence[Event], lo: int = 0, hi: int | None = None) -> dict[int, list[int]]:
    """``{DMA event index: [page object ids]}``: the frames each DMA access of ``events[lo:hi]`` reached (R4).

    A DMA step translates its addresses (GPU VM, then IOMMU) and touches
    each frame it reached in the same step, on the same thread, before that
    thread's next scheduling point (page-table walks and TLB fills
    between): those ``page_read`` / ``page_write`` events are the
    translation's result. An access that faulted reached no
    frame and has none.
    """
    out: dict[int, list[int]] = {}
    n = len(events)
    for i in range(lo, n if hi is None else min(hi, n)):
        ev = events[i]
        if not is_dma(ev.op):
            continue
        got: list[int] = []
        j = i + 1
        while j < n:
            nx = events[j]
            if nx.tid != ev.tid or nx.step != ev.step:
                break
            if nx.op in FRAME_OPS:
                obj = part_owner(nx.obj)  # the frame whose contents the access touched (page R7)
                if obj not in got:
                    got.append(obj)
            j += 1
        if got:
            out[i] = got
    return out


def page_names(kernel: Any) -> dict[int, int]:
    """``{page object id: pfn}`` from the kernel's page allocator (``mm.alloc``), after a run; {} when none."""
    ext = getattr(kernel, "ext", None) or {}
    alloc = ext.get("mm.alloc") if isinstance(ext, dict) else None
    frames = getattr(alloc, "frames", None) or ()
    return {p.oid: p.pfn for p in frames}


_CSS = """
:root{--lh:@LH@px;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111;background:#fff}
body{margin:0 12px 24px}
h1{font-size:1.25rem;margin:12px 0 4px}
h2{font-size:1.05rem;margin:14px 0 6px}
code,pre,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.meta{font-size:13px;color:#333}
.toolbar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0;font-size:13px}
.replay{display:flex;gap:6px;align-items:center;margin:6px 0;max-width:100%}
.replay code{background:#f3f3f3;border:1px solid #ccc;padding:3px 6px;overflow-x:auto;white-space:nowrap;
 max-width:calc(100% - 80px)}
button{font:inherit;padding:2px 8px}
button:focus,input:focus,.ev:focus{outline:3px solid #0072B2;outline-offset:1px}
.main{display:grid;grid-template-columns:minmax(0,1fr) minmax(280px,34%);gap:12px}
.view{position:relative;overflow-x:auto;border:1px solid #bbb}
.inner{display:flex;width:max-content}
.names{position:sticky;left:0;flex:none;width:170px;z-index:5;background:#fff}
.canvas{position:relative;flex:none}
.lane,.lname{height:var(--lh);border-bottom:1px solid #e4e4e4;box-sizing:border-box}
.lname{font-size:12px;padding:4px 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;
 border-right:1px solid #bbb}
.lname.hitlane{font-weight:bold}
.lname.hitlane::after{content:" \\25C0"}
.lane{position:relative}
.lane.sep,.lname.sep{border-top:2px solid #555}
.ev{position:absolute;top:7px;width:6px;height:10px;background:#444;border-radius:1px;cursor:default}
.ev.w{background:#222}.ev.r{background:#888}
.ev.dma{top:4px;width:0;height:0;background:none;border-left:5px solid transparent;border-right:5px solid transparent;
 border-bottom:14px solid #0072B2}
.ev.dma.w{border-bottom-color:#D55E00}
.ev.free{top:3px;height:16px;width:6px;background:#000;border-radius:0}
.ev.sig{background:#009E73;border-radius:50%;width:9px;height:9px}
.ev.tmr{background:#CC79A7;transform:rotate(45deg);width:8px;height:8px}
.ev.sw{box-shadow:-3px 0 0 #999}
.ev.irq{box-shadow:0 -4px 0 #CC79A7}
.mark{position:absolute;top:0;width:9px;height:10px;font:bold 8px/10px sans-serif;text-align:center;z-index:3;
 box-sizing:border-box;cursor:default}
.ev.pre::before,.ev.blk::before,.mark.pre::before,.mark.blk::before{position:absolute;left:7px;top:-7px;width:8px;
 height:9px;font:bold 7px/9px sans-serif;text-align:center;box-sizing:border-box}
.ev.pre::before,.mark.pre::before{content:"P";border:1px dashed #333;background:#fff;color:#000}
.ev.blk::before,.mark.blk::before{content:"Z";background:#333;color:#fff}
.mark.pre,.mark.blk{position:relative;display:inline-block;width:16px}
.mark.irq{top:auto;bottom:0;border:1px solid #CC79A7;background:#fff;color:#7a2e5c;width:14px}
.mark.irq::after{content:"IRQ";font-size:6px}
#tip{position:absolute;z-index:10;display:none;max-width:520px;background:#fffff0;border:1px solid #333;
 padding:4px 6px;font:11px/1.35 ui-monospace,Menlo,Consolas,monospace;white-space:pre;pointer-events:none;
 box-shadow:2px 2px 4px rgba(0,0,0,.25)}
.ev.hit{outline:3px solid #000;outline-offset:1px;z-index:2}
.ev.hit::after{content:"!";position:absolute;top:-12px;left:-1px;font:bold 11px sans-serif;color:#000}
.bar{position:absolute;top:2px;height:20px;box-sizing:border-box;border:1px solid #333;font-size:10px;line-height:18px;
 overflow:hidden;white-space:nowrap;padding-left:2px;opacity:.85}
.bar.wait{background:repeating-linear-gradient(45deg,#fff 0 3px,var(--c) 3px 6px);border-style:dashed}
.bar.hold{background:var(--c)}
.bar.nest1{top:5px;height:14px}.bar.nest2{top:8px;height:8px}
svg.arrows{position:absolute;left:0;top:0;pointer-events:none;z-index:1}
svg.arrows line{stroke-width:1.5}
svg.arrows line.sig{stroke:#009E73}
svg.arrows line.waitfor{stroke:#000;stroke-dasharray:4 2}
.cursor{position:absolute;top:0;width:2px;background:#0072B2;z-index:4;pointer-events:none}
.future{position:absolute;top:0;right:0;background:rgba(255,255,255,.6);z-index:2;pointer-events:none}
.side pre{white-space:pre-wrap;background:#fafafa;border:1px solid #ddd;padding:6px;max-height:520px;overflow:auto}
#info{min-height:5em}
.note{border:2px solid #E69F00;background:#fff7e6;padding:6px 8px;margin:8px 0;font-size:13px}
.legend{display:flex;flex-wrap:wrap;gap:10px;font-size:12px;margin:6px 0}
.legend span.sw{display:inline-block;width:18px;height:10px;border:1px solid #333;vertical-align:middle;
 margin-right:3px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}
.status-mismatch,.status-error{font-weight:bold;text-decoration:underline}.num{white-space:nowrap}
@media print{.toolbar,.replay button,#scrub,#tip{display:none}.view{overflow:visible}.main{display:block}
 .side pre{max-height:none}}
""".replace("@LH@", str(LANE_H))

_JS = r"""
(function(){
"use strict";
var D=JSON.parse(document.getElementById("data").textContent);
var PX=D.px,N=D.n,LO=D.lo;
var canvas=document.getElementById("canvas");
var cursor=document.getElementById("cursor"),future=document.getElementById("future");
var scrub=document.getElementById("scrub"),info=document.getElementById("info");
var stepout=document.getElementById("stepout");
var mode="step";
var tmax=0;for(var k=0;k<D.now.length;k++){if(D.now[k]>tmax)tmax=D.now[k];}
var W=Math.max(N*PX,1);
function xof(f){
  if(mode==="step")return (f-LO)*PX+4;
  var i=Math.min(Math.max(Math.ceil(f)-LO,0),D.now.length-1);
  return tmax>0?(D.now[i]/tmax)*(W-8)+4:4;
}
function evtext(i){
  var e=D.ev[i-LO];if(!e)return "";
  var who=e[1]<0?"timer (interrupt)":(D.names[e[1]]||("T"+e[1]))+"/"+e[1];
  var s="event "+i+"  step "+e[0]+"  t="+D.now[i-LO]+" ns\n"+who+": "+D.ops[e[2]]+" #"+e[3]+" "+(e[4]?"W":"R")+
        (e[5]?" "+D.dets[e[5]]:"");
  var then=D.sm[String(i)];
  if(then!==undefined){s+="\n"+D.ml[then];}
  var own=D.stk[String(D.st[i-LO])];
  if(own&&own.length){s+="\nCall Trace:\n"+own.map(function(f){return "  "+f;}).join("\n");}
  else if(D.st.length===0){var st=D.stacks[String(e[1])];
    if(st&&st.length){s+="\nstack (as reported by the finding):\n"+st.map(function(f){return "  "+f;}).join("\n");}}
  else{s+="\nCall Trace: (no scenario frame: the kernel's own work)";}
  return s;
}
var tip=document.getElementById("tip");
function showtip(el,text){
  if(!el||!text){tip.style.display="none";return;}
  tip.textContent=text;tip.style.display="block";
  var lane=el.parentNode;
  var top=(lane&&lane.offsetTop!==undefined?lane.offsetTop:0)+26;
  tip.style.left=Math.max(0,(parseFloat(el.style.left)||0)-20)+"px";tip.style.top=top+"px";
}
function evel(i){return canvas.querySelector('.lane[data-tid] .ev[data-i="'+i+'"]');}
function place(){
  var evs=canvas.querySelectorAll(".ev");
  for(var a=0;a<evs.length;a++){evs[a].style.left=(xof(+evs[a].dataset.i)-3)+"px";}
  var mk=canvas.querySelectorAll(".mark");
  for(var m=0;m<mk.length;m++){mk[m].style.left=(xof(+mk[m].dataset.a)-4)+"px";}
  var bars=canvas.querySelectorAll(".bar");
  for(var b=0;b<bars.length;b++){var x0=xof(+bars[b].dataset.a),x1=xof(+bars[b].dataset.b);
    bars[b].style.left=x0+"px";bars[b].style.width=Math.max(x1-x0,2)+"px";}
  var ls=document.querySelectorAll("svg.arrows line");
  for(var c=0;c<ls.length;c++){ls[c].setAttribute("x1",xof(+ls[c].dataset.a));
    ls[c].setAttribute("x2",xof(+ls[c].dataset.b));}
  move(+scrub.value);
}
var kbd=false;
function move(i){
  if(isNaN(i))return;
  i=Math.min(Math.max(i,LO),LO+N-1);scrub.value=String(i);
  var x=xof(i);cursor.style.left=x+"px";future.style.left=(x+2)+"px";
  stepout.textContent="event "+i+" of "+(D.total-1);
  info.textContent=evtext(i);
  if(kbd){showtip(evel(i),info.textContent);}
  var v=document.getElementById("view");
  var vis=v.clientWidth-170;  /* the lane names stick on the left */
  if(x<v.scrollLeft+20||x>v.scrollLeft+vis-20){v.scrollLeft=Math.max(0,x-Math.floor(vis*0.6));}
}
scrub.addEventListener("input",function(){move(+scrub.value);});
document.addEventListener("keydown",function(ev){
  if(ev.target&&ev.target.tagName==="INPUT"&&ev.target.id==="scrub")return;
  var to=null;
  if(ev.key==="ArrowRight"){to=+scrub.value+1;}
  else if(ev.key==="ArrowLeft"){to=+scrub.value-1;}
  else if(ev.key==="Home"){to=LO;}
  else if(ev.key==="End"){to=LO+N-1;}
  else if(ev.key==="Escape"){showtip(null,"");return;}
  if(to!==null){kbd=true;move(to);kbd=false;ev.preventDefault();}
});
canvas.addEventListener("mouseover",function(ev){var t=ev.target;
  if(t&&t.dataset&&t.dataset.i!==undefined){info.textContent=evtext(+t.dataset.i);showtip(t,info.textContent);}
  else if(t&&t.dataset&&t.dataset.m!==undefined){info.textContent=D.ml[+t.dataset.m];showtip(t,info.textContent);}
  else if(t&&t.dataset&&t.dataset.a!==undefined){info.textContent=t.getAttribute("aria-label")||"";
    showtip(t,info.textContent);}});
canvas.addEventListener("mouseout",function(){showtip(null,"");});
function pick(ev){var t=ev.target;if(t&&t.dataset&&t.dataset.i!==undefined){move(+t.dataset.i);}}
canvas.addEventListener("focusin",function(ev){pick(ev);var t=ev.target;
  if(t&&t.dataset&&t.dataset.i!==undefined){showtip(t,evtext(+t.dataset.i));}});
canvas.addEventListener("focusout",function(){showtip(null,"");});
canvas.addEventListener("click",pick);
document.getElementById("clock").addEventListener("change",function(ev){mode=ev.target.value;place();});
var hitbtn=document.getElementById("tohit");
if(hitbtn){hitbtn.addEventListener("click",function(){move(D.hit);});}
document.getElementById("copy").addEventListener("click",function(){
  var txt=document.getElementById("cmd").textContent,btn=this;
  function done(){btn.textContent="copied";}
  function fallback(){var r=document.createRange();r.selectNodeContents(document.getElementById("cmd"));
    var s=window.getSelection();s.removeAllRanges();s.addRange(r);
    try{document.execCommand("copy");done();}catch(e){btn.textContent="selected: press Ctrl+C";}}
  try{if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(txt).then(done,fallback);}else{fallback();}}
  catch(e){fallback();}
});
document.documentElement.setAttribute("data-ready","1");
move(D.hit>=0?D.hit:LO);
})();
"""

_PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="generator" content="dmabufsim">
<title>$title</title>
<style>$css</style></head>
<body>
<h1>$title</h1>
<p class="meta">outcome: <b>$outcome</b> &middot; $nthreads threads &middot; $total events &middot; $steps steps
 &middot; virtual time $now ns &middot; trace digest <code>$digest</code></p>
<div class="replay"><code id="cmd">$replay</code><button id="copy" type="button"
 aria-label="copy the replay command">copy</button></div>
$note
<div class="toolbar" role="group" aria-label="view controls">
<label for="scrub">step</label>
<input id="scrub" type="range" min="$lo" max="$hi" value="$lo" step="1" aria-label="step scrubber (arrow keys)">
<output id="stepout" for="scrub"></output>
<label>clock <select id="clock"><option value="step">steps</option><option value="time">virtual time</option>
</select></label>
$hitbutton
<span>keys: &larr; &rarr; step, Home / End</span>
</div>
<div class="legend">$legend</div>
<div class="main">
<div class="view" id="view" tabindex="0" aria-label="lanes: one per thread, then memory rows">
<div class="inner"><div class="names">$names</div>
<div class="canvas" id="canvas" style="width:${width}px;height:${height}px">
$lanes
<svg class="arrows" width="$width" height="$height" aria-hidden="true">
<defs><marker id="ah" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="6" markerHeight="6" orient="auto">
<path d="M0,0L6,3L0,6z" fill="#333"/></marker></defs>
$arrows
</svg>
<div class="cursor" id="cursor" style="height:${height}px"></div>
<div id="tip" role="tooltip"></div>
<div class="future" id="future" style="height:${height}px"></div>
</div></div></div>
<div class="side">
<h2>event</h2><pre id="info" aria-live="polite"></pre>
$findings
</div></div>
$elided
<script type="application/json" id="data">$data</script>
<script>$js</script>
</body></html>
""")


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def render(
    ex: Execution,
    *,
    title: str = "dmabufsim",
    replay: str = "",
    pages: Mapping[int, int] | None = None,
    max_drawn: int = MAX_DRAWN,
) -> str:
    """The HTML page of a recorded execution ``ex`` (``Kernel(record_trace=True)``).

    ``replay`` is the command that rebuilds it (shown with a copy button);
    ``pages`` maps page object ids to pfns (:func:`page_names`).
    """
    events = ex.events
    if events is None:
        raise UsageError("this execution kept no events: run it with Kernel(..., record_trace=True)")
    pages = dict(pages or {})
    total = len(events)
    hits: set[int] = set()
    for f in ex.findings:
        hits.update(finding_events(events, f))
    # R6: the window drawn.
    if total > max_drawn:
        end = min(total, (max(hits) + 1 + max_drawn // 10) if hits else total)
        hi = max(end, max_drawn)
        lo = hi - max_drawn
    else:
        lo, hi = 0, total
    names = {t.tid: t.name for t in ex.threads}
    threads = sorted(ex.threads, key=lambda t: t.tid)
    lane_of: dict[int, int] = {t.tid: n for n, t in enumerate(threads)}
    timer_lane = len(threads)
    lanes_html: list[list[str]] = [[] for _ in range(timer_lane + 1)]
    lane_labels = [f"{t.name}/{t.tid}" + (f" ({t.context})" if t.context else " (engine/worker)" if t.daemon else "")
                   for t in threads]
    lane_labels.append("timers / interrupts")
    lane_tids = [str(t.tid) for t in threads] + ["-1"]
    # Memory rows (R4).
    finding_pfn: dict[int, int] = {}
    for f in ex.findings:
        pfn = f.details.get("pfn") if isinstance(f.details, dict) else None
        if isinstance(pfn, int):
            for i in finding_events(events, f):
                if is_dma(events[i].op):
                    finding_pfn[i] = pfn
    reached = dma_frames(events, lo, hi)
    mem_rows: dict[str, int] = {}
    mem_labels: list[str] = []
    mem_keys: list[str] = []

    def mem_row(key: str, label: str) -> int:
        r = mem_rows.get(key)
        if r is None:
            r = mem_rows[key] = timer_lane + 1 + len(mem_labels)
            mem_labels.append(label)
            mem_keys.append(key)
            lanes_html.append([])
        return r

    def page_key(oid: int) -> tuple[str, str]:
        pfn = pages.get(oid)
        return (f"pfn{pfn}", f"page pfn {pfn}") if pfn is not None else (f"page{oid}", f"page #{oid}")

    # Pre-create the rows in a stable order: pages first (by pfn/oid), then domains.
    page_rows: list[tuple[int, str, str]] = []
    for i in range(lo, hi):
        ev = events[i]
        if ev.op in PAGE_OPS:
            obj = counted_oid(ev.obj)
            key, label = page_key(obj)
            page_rows.append((pages.get(obj, 1 << 40) if obj in pages else obj + (1 << 41), key, label))
        for oid in reached.get(i, ()):
            key, label = page_key(oid)
            page_rows.append((pages.get(oid, 1 << 40) if oid in pages else oid + (1 << 41), key, label))
    for pfn in sorted(set(finding_pfn.values())):
        page_rows.append((pfn, f"pfn{pfn}", f"page pfn {pfn}"))
    named = {f"pfn{pfn}" for pfn in finding_pfn.values()}
    for _, key, label in sorted(set(page_rows)):
        mem_row(key, label + (" (the finding's page)" if key in named else ""))
    for i in range(lo, hi):
        ev = events[i]
        if is_dma(ev.op):
            mem_row(f"dom{ev.obj}", f"DMA via domain #{ev.obj}" + (f" ({ev.detail})" if ev.detail else ""))

    irq_of = {t.tid for t in threads if t.context}
    # R7: each switch away from a thread, on that thread's last event before it.
    sched_of: dict[int, tuple[str, str]] = {}
    marks_ = ex.sched_marks or ()
    if marks_:
        last: dict[int, int] = {}
        mi = 0
        for i_ev in range(hi + 1):
            while mi < len(marks_) and marks_[mi].pos <= i_ev:
                sm = marks_[mi]
                mi += 1
                at = last.get(sm.tid)
                if at is not None and at >= lo and at not in sched_of:
                    sched_of[at] = (("pre", "then preempted: runnable, another thread was chosen")
                                    if sm.what == "preempt" else ("blk", f"then blocks (sleeps): {sm.on}"))
            if i_ev < len(events):
                last[events[i_ev].tid] = i_ev
    mark_labels: dict[str, int] = {}
    data_sm: dict[str, int] = {}
    ev_stacks = ex.event_stacks
    table = ex.stack_table or []
    data_st: list[int] = []
    used_stacks: dict[str, list[str]] = {}
    ops: dict[str, int] = {}
    dets: dict[str, int] = {"": 0}
    data_ev: list[list[Any]] = []
    data_now: list[int] = []
    prev_tid = None

    px = max(PX, min(48, 640 // max(hi - lo, 1)))

    def x(f: float) -> float:
        return (f - lo) * px + 4

    for i in range(lo, hi):
        ev = events[i]
        oi = ops.setdefault(ev.op, len(ops))
        di = dets.setdefault(ev.detail, len(dets))
        data_ev.append([ev.step, ev.tid, oi, ev.obj, 1 if ev.write else 0, di])
        data_now.append(ev.now)
        if ev_stacks is not None:
            sid = ev_stacks[i]
            data_st.append(sid)
            if str(sid) not in used_stacks:
                used_stacks[str(sid)] = [str(fr) for fr in table[sid]]
        cls = ["ev", "w" if ev.write else "r"]
        if is_dma(ev.op):
            cls.append("dma")
        elif ev.op == "free_page":
            cls.append("free")
        elif ev.op in SIGNAL_OPS:
            cls.append("sig")
        sw = sched_of.get(i)
        if sw is not None:
            cls.append(sw[0])
            data_sm[str(i)] = mark_labels.setdefault(sw[1], len(mark_labels))
        if ev.op == "spawn" and ev.obj in irq_of:
            cls.append("irq")  # raise_irq / raise_softirq: the interrupt arrives
        if ev.tid < 0:
            cls.append("tmr")
        elif prev_tid is not None and ev.tid != prev_tid:
            cls.append("sw")  # a context switch: another thread runs (a preemption or a block)
        if i in hits:
            cls.append("hit")
        if ev.tid >= 0:
            prev_tid = ev.tid
        left = f"{x(i) - 3:g}"
        attrs = f'class="{" ".join(cls)}" data-i="{i}" style="left:{left}px"'
        if i in hits:
            attrs += ' tabindex="0" aria-label="finding event"'
        lane = lane_of.get(ev.tid, timer_lane)
        lanes_html[lane].append(f"<i {attrs}></i>")
        # The copy on a memory row is class "ev mem": the same event, drawn where it touches memory (R4).
        mem = f'<i {attrs.replace(chr(34) + "ev ", chr(34) + "ev mem ", 1)}></i>'
        if ev.op in PAGE_OPS:
            lanes_html[mem_row(*page_key(counted_oid(ev.obj)))].append(mem)
        if is_dma(ev.op):
            lanes_html[mem_rows[f"dom{ev.obj}"]].append(mem)
            # R4: on the row of every frame the access reached (and of the finding's page).
            dest = [mem_rows[page_key(oid)[0]] for oid in reached.get(i, ())]
            if i in finding_pfn:
                dest.append(mem_rows[f"pfn{finding_pfn[i]}"])
            for r in dict.fromkeys(dest):
                lanes_html[r].append(mem)

    # R7: where the scheduler took the CPU, and interrupt arrivals.
    # A mark's words are in the page's data once (``ml``); the element names them by index (``data-m``).
    def mark(lane: int, cls: str, pos: float, words: str) -> None:
        mi = mark_labels.setdefault(words, len(mark_labels))
        lanes_html[lane].append(f'<i class="mark {cls}" data-a="{pos:g}" data-m="{mi}" style="left:{x(pos) - 4:g}px">'
                                '</i>')

    irq_tids = {t.tid: t.context for t in threads if t.context}
    arrival: dict[int, int] = {}
    for n_ev, ev in enumerate(events if irq_tids else ()):
        if ev.op == "spawn" and ev.obj in irq_tids and ev.obj not in arrival:
            arrival[ev.obj] = n_ev
        elif ev.tid in irq_tids and ev.tid not in arrival:
            arrival[ev.tid] = n_ev  # raised from a timer callback: no spawn point, its first event
    for irq_tid, at in sorted(arrival.items()):
        if lo <= at < hi:
            mark(lane_of[irq_tid], "irq", float(at),
                 f"interrupt arrives: {names.get(irq_tid, irq_tid)} ({irq_tids[irq_tid]})")

    # Lock bars (R3), clipped to the window.
    bars = lock_bars(events, ex.lock_marks)
    classes: dict[str, int] = {}
    depth: dict[int, list[float]] = {}
    for b in bars:
        if b.stop < lo or b.start >= hi:
            continue
        ci = classes.setdefault(b.cls, len(classes))
        a, z = max(b.start, lo - 0.5), min(b.stop, hi - 0.5)
        open_ = depth.setdefault(b.tid, [])
        open_[:] = [s for s in open_ if s > a]
        nest = min(len(open_), 2)
        open_.append(z)
        label = f"{'waits for' if b.kind == 'wait' else 'holds'} {b.cls}" + (f" ({b.note})" if b.note else "")
        lanes_html[lane_of.get(b.tid, timer_lane)].insert(0, (
            f'<b class="bar {b.kind} nest{nest}" data-a="{a:g}" data-b="{z:g}" '
            f'style="--c:{PALETTE[ci % len(PALETTE)]};left:{x(a):g}px;width:{max(x(z) - x(a), 2):g}px" '
            f'aria-label="{_esc(label)}">{_esc(b.cls)}</b>'))

    # Arrows: signal -> waiter, wait -> holder.
    arrows: list[str] = []

    def y(lane: int) -> int:
        return lane * LANE_H + LANE_H // 2

    for s, w, nxt in signal_arrows(events):
        if not lo <= s < hi:
            continue
        to = float(nxt) if lo <= nxt < hi else float(hi - 1)
        la, lb = lane_of.get(events[s].tid, timer_lane), lane_of.get(w, timer_lane)
        arrows.append(f'<line class="sig" data-a="{s}" data-b="{to:g}" x1="{x(s):g}" y1="{y(la)}" x2="{x(to):g}" '
                      f'y2="{y(lb)}" marker-end="url(#ah)"/>')
    for wb, hb in wait_arrows(bars):
        if not lo <= wb.start < hi:
            continue
        la, lb = lane_of.get(wb.tid, timer_lane), lane_of.get(hb.tid, timer_lane)
        arrows.append(f'<line class="waitfor" data-a="{wb.start:g}" data-b="{wb.start:g}" x1="{x(wb.start):g}" '
                      f'y1="{y(la)}" x2="{x(wb.start):g}" y2="{y(lb)}" marker-end="url(#ah)"/>')

    # Lanes.
    hit_tids = {events[i].tid for i in hits}
    name_divs: list[str] = []
    lane_divs: list[str] = []
    all_labels = lane_labels + mem_labels
    for n, label in enumerate(all_labels):
        sep = " sep" if n == timer_lane + 1 else ""
        if n <= timer_lane:
            tid = lane_tids[n]
            hl = " hitlane" if int(tid) in hit_tids else ""
            name_divs.append(f'<div class="lname{sep}{hl}" title="{_esc(label)}">{_esc(label)}</div>')
            lane_divs.append(f'<div class="lane{sep}" data-tid="{tid}">{"".join(lanes_html[n])}</div>')
        else:
            key = mem_keys[n - timer_lane - 1]
            attr = f'data-page="{key[3:]}"' if key.startswith("pfn") else (
                f'data-page-obj="{key[4:]}"' if key.startswith("page") else f'data-domain="{key[3:]}"')
            name_divs.append(f'<div class="lname mem{sep}" title="{_esc(label)}">{_esc(label)}</div>')
            lane_divs.append(f'<div class="lane mem{sep}" {attr}>{"".join(lanes_html[n])}</div>')

    width = int(max(hi - lo, 1) * px + 12)
    height = len(all_labels) * LANE_H
    legend = "".join(
        f'<span><span class="sw" style="background:{PALETTE[ci % len(PALETTE)]}"></span>{_esc(c)}</span>'
        for c, ci in classes.items()
    ) + ('<span><span class="sw" style="background:repeating-linear-gradient(45deg,#fff 0 3px,#999 3px 6px)">'
         '</span>waiting (hatched)</span><span>&#9650; DMA (orange: write, blue: read)</span>'
         '<span>&#9646; __free_page</span><span>&#9679; signal</span><span>&#9670; timer</span>'
         '<span><i class="mark pre"></i> then preempted</span>'
         '<span><i class="mark blk"></i> then blocks (sleeps)</span>'
         '<span><i class="mark irq" style="position:relative;display:inline-block"></i> interrupt arrives</span>'
         '<span>! finding event</span><span>hover or step to an event: its call trace</span>')

    stacks: dict[str, list[str]] = {}
    for f in ex.findings:
        for t in f.threads:
            stacks.setdefault(str(t.tid), [str(fr) for fr in t.stack])
    findings_html: list[str] = []
    for n, f in enumerate(ex.findings):
        findings_html.append(
            f'<section class="finding" data-kind="{_esc(f.kind)}"><h2>finding {n + 1}: {_esc(f.kind)} '
            f'({_esc(f.severity)})</h2><p class="mono">{_esc(f.title)} &middot; step {f.step}'
            f'{" &middot; rule " + _esc(f.rule) if f.rule else ""}</p>'
            f'<pre class="report">{_esc(f.report or f.title)}</pre></section>')
    if not findings_html:
        findings_html.append("<p>No finding in this execution.</p>")
    hit0 = min(hits) if hits else -1

    note = ""
    elided = ""
    if lo > 0 or hi < total:
        note = (f'<p class="note" id="summary-note" role="note">This execution has {total} events; the page draws '
                f'events {lo} to {hi - 1} ({hi - lo} events, the limit is {max_drawn}), ending just after the '
                f'finding. The {lo + total - hi} events left out are counted per thread in the table at the '
                f'bottom.</p>')
        rows = []
        for th in [*threads, None]:
            ttid = th.tid if th is not None else -1
            sel = [ev for part in (events[:lo], events[hi:]) for ev in part if ev.tid == ttid]
            if not sel:
                continue
            nl = sum(1 for ev in sel if is_acquire(ev.op) or is_release(ev.op))
            nd = sum(1 for ev in sel if is_dma(ev.op))
            label = f"{th.name}/{th.tid}" if th is not None else "timers / interrupts"
            rows.append(f"<tr><td>{_esc(label)}</td><td>{len(sel)}</td><td>{nl}</td><td>{nd}</td></tr>")
        elided = ('<h2>events not drawn</h2><table id="elided"><tr><th>thread</th><th>events</th>'
                  f'<th>lock operations</th><th>DMA accesses</th></tr>{"".join(rows)}</table>')

    data = {
        "px": px, "n": hi - lo, "lo": lo, "total": total, "hit": hit0,
        "ev": data_ev, "now": data_now, "ops": list(ops), "dets": list(dets),
        "names": {str(k): v for k, v in sorted(names.items())}, "stacks": stacks,
        "st": data_st, "stk": used_stacks, "ml": list(mark_labels), "sm": data_sm,
    }
    # "<" only occurs inside JSON strings: \u003c keeps "</script>" and "<!--" out of the script element.
    text = json.dumps(data, separators=(",", ":"), sort_keys=True).replace("<", "\\u003c")
    return _PAGE.substitute(
        title=_esc(title), css=_CSS, js=_JS, outcome=_esc(ex.outcome), nthreads=len(ex.threads), total=total,
        steps=ex.steps, now=ex.now, digest=_esc(ex.trace_digest), replay=_esc(replay or f"token {ex.token}"),
        note=note, lo=lo, hi=max(hi - 1, lo), width=width, height=height, legend=legend,
        hitbutton=('<button id="tohit" type="button">go to the finding</button>' if hits else ""),
        names="".join(name_divs), lanes="".join(lane_divs), arrows="\n".join(arrows),
        findings="".join(findings_html), elided=elided, data=text,
    )


def write(ex: Execution, path: str, **kw: Any) -> None:
    """Write the page of ``ex`` to ``path`` (an unwritable path is a one-line UsageError)."""
    text = render(ex, **kw)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None


def ensure_dir(path: str) -> str:
    """Create the directory ``path`` for pages (``--html DIR/``); a one-line UsageError when it cannot be."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {exc.filename}: {exc.strerror}") from None
    return path


# ---------------------------------------------------------------------------- the commands' pages


def add_html_argument(p: Any, *, directory: bool) -> None:
    """``--html OUT.html`` (one page) or ``--html DIR/`` (a page per finding / counterexample, and an index)."""
    if directory:
        p.add_argument("--html", metavar="DIR", help="write a self-contained HTML page per finding, and an "
                       "index.html, into DIR (created if missing)")
    else:
        p.add_argument("--html", metavar="OUT.html", help="write a self-contained HTML page of the execution "
                       "(lanes per thread, locks, fences, DMA and frees, the finding)")


def replay_recorded(token: str, scenario: Any, kernel_options: Mapping[str, Any],
                    max_steps: int | None = None) -> tuple[Execution, Any]:
    """Rebuild the execution of ``token`` with its trace recorded: ``(execution, kernel)``."""
    from ..kernel.runtime import Kernel

    opts: dict[str, Any] = {**dict(kernel_options), "record_trace": True}
    if max_steps is not None:
        opts["max_steps"] = max_steps
    k = Kernel(replay=token, **opts)
    return k.run(scenario), k


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s).strip("_") or "page"


_INDEX = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="generator" content="dmabufsim"><title>$title</title><style>$css</style></head>
<body><h1>$title</h1><p class="meta">$summary</p>
<table id="index"><thead><tr>$head</tr></thead><tbody>
$rows
</tbody></table></body></html>
""")


def _index(title: str, summary: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An index page: ``rows`` are cells already escaped (links allowed)."""
    return _INDEX.substitute(
        title=_esc(title), css=_CSS, summary=summary, head="".join(f"<th>{_esc(h)}</th>" for h in head),
        rows="\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows),
    )


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None


def explore_pages(report: Any, args: Any, scenario: Any, kernel_options: Mapping[str, Any]) -> None:
    """``explore --html DIR``: one page per finding (its token replayed, recorded), and ``DIR/index.html``."""
    out = getattr(args, "html", None)
    if not out:
        return
    from ..explore.commandline import replay_command

    ensure_dir(out)
    rows: list[list[str]] = []
    for n, ef in enumerate([*report.findings, *report.info], 1):
        ex, k = replay_recorded(ef.token, scenario, kernel_options, args.max_steps)
        cmd = replay_command(ef.token, args.scenario, scenarios_dirs=args.scenarios, max_steps=args.max_steps)
        name = f"{n:02d}-{_slug(ef.kind)}.html"
        _write_text(os.path.join(out, name), render(ex, title=f"{args.scenario}: {ef.finding.title}", replay=cmd,
                                                    pages=page_names(k)))
        rows.append([str(n), f'<a href="{_esc(name)}">{_esc(ef.kind)}</a>', _esc(ef.finding.title),
                     _esc(ef.strategy), str(ef.steps), f"<code>{_esc(cmd)}</code>"])
    summary = (f"verdict <b>{_esc(report.verdict)}</b> &middot; {report.executions} executions &middot; "
               f"{report.elapsed:.2f} s")
    _write_text(os.path.join(out, "index.html"), _index(
        f"dmabufsim explore {args.scenario}", summary, ("#", "finding", "title", "strategy", "steps", "replay"), rows))


#: A verdict in words and a sign, never a colour alone.
_STATUS_MARK = {"match": "✓ match", "mismatch": "✗ MISMATCH", "error": "✗ ERROR", "pending": "… pending",
                "skipped": "– skipped", "interrupted": "interrupted"}


def check_pages(result: Any, out: str, scenarios_dirs: tuple[str, ...] = ()) -> None:
    """``check --html DIR``: ``DIR/index.html``, the catalog table with each row's verdict, guarantee and
    timing, linking to one page per counterexample (the row's token replayed, recorded)."""
    from ..explore.commandline import replay_command

    ensure_dir(out)
    rows: list[list[str]] = []
    for r in result.rows:
        row = r.row
        exp = row.expected.describe() if row.expected else "—"
        if not r.executions:
            guarantee = "—"
        elif r.exhaustive:
            guarantee = f"exhaustive ({r.executions} executions, {r.strategy})"
        elif r.token:
            guarantee = f"found in {r.executions} executions ({r.strategy})"
        else:
            guarantee = f"not exhaustive: {r.executions} executions ({r.strategy})"
        link = "—"
        if r.token and row.scenario is not None:
            ex, k = replay_recorded(r.token, row.scenario, row.kernel_options)
            cmd = replay_command(r.token, row.key, scenarios_dirs=scenarios_dirs)
            name = f"{_slug(row.key)}.html"
            _write_text(os.path.join(out, name), render(ex, title=f"{row.key}: {row.title}", replay=cmd,
                                                        pages=page_names(k)))
            link = f'<a href="{_esc(name)}">counterexample</a>'
        found = r.found_text if r.status in ("match", "mismatch") else r.why
        mark = _STATUS_MARK.get(r.status, r.status)
        rows.append([_esc(row.key), _esc(exp), f'<span class="status-{_esc(r.status)}">{_esc(mark)}</span>',
                     _esc(found), _esc(guarantee), f'<span class="num">{r.elapsed:.2f}&nbsp;s</span>', link])
    n = {s: sum(1 for r in result.rows if r.status == s) for s in ("match", "mismatch", "error", "pending")}
    summary = (f"{n['match']} match, {n['mismatch'] + n['error']} mismatch, {n['pending']} pending"
               + (" &middot; INTERRUPTED (partial)" if result.interrupted else ""))
    _write_text(os.path.join(out, "index.html"), _index(
        "dmabufsim check", summary, ("row", "expected", "verdict", "found", "guarantee", "time", "page"), rows))
