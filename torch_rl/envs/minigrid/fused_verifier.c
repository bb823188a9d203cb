/* BabyAI's verifier step for a batch of envs in one loop: the same state changes and verdicts as
 * BatchedVerifier._follow_objects and BatchedVerifier._verdict (verifier.py, which documents the rules), so
 * their tensor ops run on CUDA and these on the CPU. The constants come from the Python modules as -D flags
 * (fused.py); the state's columns are BatchedVerifier.state's and .flags'. */
#include <stdint.h>
#include <string.h>

#define S NUM_SLOTS
/* BatchedVerifier.state's columns (verifier.py: S_*) and flags' (F_*) */
#define CARRY_ID S_CARRY_ID
#define KIND(k) (S_KIND + (k))
#define MASK(k) (S_MASK + (k))
#define MASK_FIXED(k) (S_MASK_FIXED + (k))
#define PRE(k) (S_PRE + (k))
#define LOGIC S_LOGIC
#define STRICT(k) (F_STRICT + (k))
#define STALE F_STALE

#define BIT(word, k) (((word) >> (k)) & 1)

void verifier_step(
    int64_t B, int64_t cells, int64_t n, int64_t rules,
    const int64_t *action, const int64_t *step_front, const int64_t *step_index, /* the engine's step */
    const int64_t *agent, const int64_t *dir, const int64_t *delta, /* the agent now; delta: front offsets */
    const uint8_t *grid, uint8_t *ids, uint8_t *known, uint8_t *goto_cells, /* (B, cells) each */
    const uint8_t *goto_bits, int64_t *obj_pos, /* (B, MAX_IDS) each */
    int64_t *state, int64_t state_stride, uint8_t *flags, int64_t flags_stride,
    const uint8_t *t_picked, const uint8_t *t_dropped, const uint8_t *t_opened_box, const uint8_t *is_door,
    const int64_t *sequence, int64_t nowhere, const int64_t *neighbours,
    uint8_t *success_out, uint8_t *failure_out)
{
    for (int64_t b = 0; b < B; b++) {
        int64_t *st = state + b * state_stride;
        uint8_t *fl = flags + b * flags_stride;
        const uint8_t *g = grid + b * cells;
        uint8_t *id = ids + b * cells;
        const int64_t a = action[b];

        if (rules & RULE_FOLLOW) { /* _follow_objects */
            const int64_t f = step_front[b], t = step_index[b];
            const int picked = t_picked[t], dropped = t_dropped[t], opened_box = t_opened_box[t];
            const int64_t id_front = id[f], carry_id = st[CARRY_ID];
            const int64_t revealed = g[f] != C_EMPTY ? UNTRACKED : 0;
            const int64_t new_id = picked ? 0 : dropped ? carry_id : opened_box ? revealed : id_front;
            if (rules & RULE_PUTNEXT) {
                const int64_t moved = picked ? id_front : dropped ? carry_id : 0;
                obj_pos[b * MAX_IDS + moved] = picked ? nowhere : f;
            }
            st[CARRY_ID] = picked ? id_front : dropped ? 0 : carry_id;
            id[f] = (uint8_t)new_id;
            if (rules & RULE_GOTO) {
                goto_cells[b * cells + f] = goto_bits[b * MAX_IDS + new_id];
                fl[STALE] |= picked | dropped | opened_box;
                if (a == A_DROP && fl[STALE])
                    memcpy(known + b * cells, goto_cells + b * cells, cells);
                if (a == A_DROP)
                    fl[STALE] = 0;
            }
        }

        /* _verdict: each slot as if Minigrid called its verify, after the step */
        const int64_t front = agent[b] + delta[dir[b]];
        const int64_t carry_id = st[CARRY_ID];
        const int64_t code = g[front], id_now = id[front];
        const int open_door = code >= C_DOOR_OPEN0 && code < C_DOOR_OPEN0 + N_COLORS;
        const int strict_rules = (rules & RULE_STRICT) != 0;
        int64_t successes = 0, failures = 0;
        for (int64_t k = 0; k < n; k++) {
            const int64_t kind = st[KIND(k)], mask = st[MASK(k)], pre = st[PRE(k)];
            const int strict = strict_rules && fl[STRICT(k)];
            int ok = 0, fail = 0;
            if (kind == GOTO) { /* facing one of the positions its description has (or had) objects at */
                ok = BIT(known[b * cells + front], k);
            } else if (kind == OPEN) { /* toggling one of its doors open; strict: toggling any other door */
                ok = a == A_TOGGLE && BIT(mask, id_now) && open_door;
                fail = strict && a == A_TOGGLE && is_door[code] && !ok;
            } else if (kind == PICKUP) { /* picking up one of its objects with nothing in hand when last asked */
                ok = a == A_PICKUP && pre == 0 && BIT(mask, carry_id);
                fail = strict && a == A_PICKUP && carry_id != 0 && !ok;
            } else if (kind == PUTNEXT) { /* dropping what it carried when last asked beside one of desc_fixed */
                const int64_t pos = obj_pos[b * MAX_IDS + pre], fixed = st[MASK_FIXED(k)];
                int beside = 0;
                for (int e = 0; e < 4; e++)
                    beside |= BIT(fixed, ids[b * cells + pos + neighbours[e]]);
                ok = a == A_DROP && BIT(mask, pre) && beside;
                fail = strict && a == A_PICKUP && carry_id != 0;
            }
            successes |= (int64_t)ok << k;
            failures |= (int64_t)fail << k;
        }
        if (n == 1) { /* one action: asked at every step */
            if (rules & RULE_REMEMBERS)
                st[PRE(0)] = carry_id;
            success_out[b] = successes & 1;
            failure_out[b] = failures & 1;
            continue;
        }
        /* the parts, their ands and the sequence: one lookup (verifier.combine) */
        const int64_t out = sequence[st[LOGIC] | successes << LOGIC_BITS | failures << (LOGIC_BITS + S)];
        st[LOGIC] = out & ((1 << LOGIC_BITS) - 1);
        if (rules & RULE_REMEMBERS)
            for (int64_t k = 0; k < S; k++)
                if (BIT(out, k + LOGIC_BITS + 2))
                    st[PRE(k)] = carry_id;
        success_out[b] = BIT(out, LOGIC_BITS);
        failure_out[b] = BIT(out, LOGIC_BITS + 1);
    }
}
