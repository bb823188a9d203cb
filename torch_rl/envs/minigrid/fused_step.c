/* The engine's move for a batch of envs in one loop: the same rule as BatchedMiniGridEnv._step's tensor ops
 * (engine.py; the tables: _transition_tables), so those run on CUDA and this on the CPU. It is used for families
 * without rules of their own around the move (Family.before_step, after_step), boxes' contents or per-episode
 * step limits. N_CODES and N_ACTIONS come from the Python modules as -D flags (fused.py). */
#include <stdint.h>

/* Returns how many envs are done (their rows written to `rows`, ascending), or -1, changing nothing, if an action
 * is not one of the N_ACTIONS. */
int64_t engine_step(
    int64_t B, const int64_t *action,
    uint8_t *grid, int64_t grid_stride, /* (B, Hp * Wp) codes, padded by walls (engine.PAD) */
    int64_t *agent, int64_t *dir, int64_t *carry, int64_t *step_count, /* (B,) state, changed in place */
    const int64_t *delta, /* (4,) flat offset of the cell in front, per direction */
    const uint8_t *t_front, const int64_t *t_carry, /* tables indexed by (action * N + front) * N + carried */
    const uint8_t *t_move, const uint8_t *t_goal, const uint8_t *t_lava,
    const int64_t *t_dir, /* [action * 4 + direction]: the new direction */
    const float *reward_tab, int64_t max_steps, /* [step count]: Minigrid's _reward() */
    float *reward, uint8_t *terminated, uint8_t *truncated, uint8_t *done, int64_t *rows)
{
    for (int64_t b = 0; b < B; b++)
        if (action[b] < 0 || action[b] >= N_ACTIONS)
            return -1;
    int64_t n = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t a = action[b], count = ++step_count[b];
        const int64_t front = agent[b] + delta[dir[b]];
        uint8_t *cell = grid + b * grid_stride + front;
        const int64_t t = (a * N_CODES + *cell) * N_CODES + carry[b];
        *cell = t_front[t];
        carry[b] = t_carry[t];
        if (t_move[t])
            agent[b] = front;
        dir[b] = t_dir[a * 4 + dir[b]];
        reward[b] = t_goal[t] ? reward_tab[count < max_steps ? count : max_steps] : 0.0f;
        terminated[b] = t_goal[t] | t_lava[t];
        truncated[b] = count >= max_steps;
        done[b] = terminated[b] | truncated[b];
        if (done[b])
            rows[n++] = b;
    }
    return n;
}
