"""Message passing: the chapter's loop, with each agent a service that is sent the state.

The idea
--------
In ``multi_agent_system.py`` the loop calls ``planner_agent(state, llm)`` in its own
process. Here it sends the shared state in a message to the planner's service
and applies the reply: what the agent wrote into the state, and what its calls
cost. The services run the chapter's own agent functions, through the chapter's
own budget gate, on the state they are sent, so nothing about the agents
changes; only where they run does. Every limit and stop reason of the chapter
holds, because this loop is the chapter's loop and the request carries the
run's limits and what it has spent. The run's state is saved after every step,
so a killed orchestrator can be resumed.

Over NATS (``--broker``) each role is its own process, on any machine that
reaches the broker, and a role can have several copies sharing its queue.
Without ``--broker`` the same services run as threads over an in-process queue:
the same messages, the same checks, no setup.

Run it
------
::

    python -m stages.variants.message_passing "Write a haiku about agents"     # in one process
    nats-server -js &                                                           # a broker (requirements-nats.txt)
    python -m stages.variants.message_passing serve planner --broker nats://127.0.0.1:4222   # one terminal each
    python -m stages.variants.message_passing serve worker --broker nats://127.0.0.1:4222
    python -m stages.variants.message_passing serve critic --broker nats://127.0.0.1:4222
    python -m stages.variants.message_passing "Write a haiku about agents" --broker nats://127.0.0.1:4222
    python -m stages.variants.message_passing --resume RUN_ID --broker nats://127.0.0.1:4222  # after a crash

Compare ``orchestrate`` below with the chapter's: the three agent calls go
through ``remote(...)`` (stages/variants/README.md shows the diff). The
transport is machinery/bus.py, the messages and the services machinery/services.py,
the command line machinery/distributed.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from machinery import distributed
from machinery.text import times
from multi_agent_system import (
    REJECTIONS_BEFORE_REPLAN,
    Gateway,
    HistoryItem,
    NextStep,
    Reply,
    SharedState,
    StopRun,
    ask_human,
    critic_agent,
    decide_next_step,
    finish,
    new_state,
    planner_agent,
    run_step,
    worker_agent,
)


def remote(agent: Callable[[SharedState, Any], Reply | None]) -> Callable[[SharedState, Any], Reply | None]:
    """The step that runs ``agent`` in its service: send the state, wait for the reply, apply what it wrote."""
    role = agent.__name__.removesuffix("_agent")  # planner_agent runs in the planner's service

    def step(state: SharedState, llm: Any) -> Reply | None:
        return llm.remote(role, state)  # machinery/services.py: RemoteGateway.remote

    return step


# -- The orchestrator: the chapter's loop, its agents reached through remote() --


def orchestrate(task: str, llm: Gateway) -> SharedState:
    """The chapter's orchestrate(), except that each agent runs in its service (and each step is saved)."""
    settings = llm.settings
    state = new_state(task)
    llm.record("start", state)
    step: NextStep = "replan"  # the first plan is a re-plan from nothing
    try:
        while True:
            # The one place the iteration limit is enforced: before any call of a new
            # round, so a plan that no round could use is never paid for.
            if state["iteration"] >= settings.max_iterations:
                raise StopRun("max_iterations", f"{settings.max_iterations} iterations without approval")
            if step == "replan":
                run_step(state, llm, "planner", remote(planner_agent))
            state["iteration"] += 1
            run_step(state, llm, "worker", remote(worker_agent))
            run_step(state, llm, "critic", remote(critic_agent))
            if state["critic_approved"]:
                finish(state, "approved", f"approved on iteration {state['iteration']}")
                return state
            step = decide_next_step(state["worker_attempts"], state["plan_version"], settings)
            if step != "revise" and llm.human is not None:  # the top rung: a person decides, if one is there
                step = ask_human(state, llm, step)
            where = {"iteration": state["iteration"], "plan_version": state["plan_version"]}
            state["history"].append(HistoryItem(kind="escalation", action=step, **where))  # type: ignore[typeddict-item]
            llm.record("escalation", state, step=step)
            if step == "accept":
                finish(state, "approved", f"a human approved the draft of iteration {state['iteration']}")
                return state
            if step == "give_up":
                raise StopRun(
                    "escalation_exhausted",
                    f"{state['plan_version']} plan(s), each rejected {times(REJECTIONS_BEFORE_REPLAN)}: needs a human",
                )
    except StopRun as halt:
        finish(state, halt.stop_reason, halt.detail)
    except KeyboardInterrupt:
        finish(state, "interrupted", "stopped with Ctrl-C")
    except Exception:  # a bug (OutOfOrderError among them): the trace still ends, then the error goes up
        finish(state, "crashed", "an unexpected error ended the run")
        raise
    finally:
        state["total_tokens"], state["cost_usd"] = llm.spent()  # a step that failed midway may have paid for a call
        if state["status"] != "approved" and state["best"] is not None:  # never worse than the best draft so far
            state["result"] = state["best"]["draft"]
        llm.record("end", state)  # the gateway saves the run here too, as at every step
    return state


def main(argv: list[str] | None = None, **options: Any) -> int:
    """The chapter's command line with this loop, plus --broker, --resume and `serve ROLE`."""
    return distributed.main(argv, loop=orchestrate, **options)


if __name__ == "__main__":
    sys.exit(main())
