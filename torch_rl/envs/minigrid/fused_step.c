/* The engine's move for a batch of envs in one loop: the same rule as BatchedMiniGridEnv's tensor ops (engine.py,
 * _move; the tables: _transition_tables), so those run on CUDA and this on the CPU. engine_step is a whole step
 * of a family without rules of its own around the move; engine_move is the move alone, for a family whose rules
 * (Family.before_step, after_step) then run as tensor ops. N_CODES and N_ACTIONS come from the Python modules as
 * -D flags (fused.py). */
#include <stdint.h>

typedef struct {
    const int64_t *delta; /* (4,) flat offset of the cell in front, per direction */
    const uint8_t *front, *move, *goal, *lava; /* tables indexed by (action * N + front) * N + carried */
    const int64_t *carry;
    const int64_t *dir; /* [action * 4 + direction]: the new direction */
} Tables;

static int valid_actions(int64_t B, const int64_t *action)
{
    for (int64_t b = 0; b < B; b++)
        if (action[b] < 0 || action[b] >= N_ACTIONS)
            return 0;
    return 1;
}

/* Moves env b: its front cell changed in the grid, its new position, direction and carried code written to the
 * outputs (which may be the inputs). Returns the table index; *front is the front cell's flat index. */
static inline int64_t move(
    int64_t b, int64_t a, uint8_t *grid, int64_t grid_stride, const int64_t *agent, const int64_t *dir,
    const int64_t *carry, const Tables *t, int64_t *agent_out, int64_t *dir_out, int64_t *carry_out, int64_t *front)
{
    const int64_t position = agent[b], direction = dir[b];
    *front = position + t->delta[direction];
    uint8_t *cell = grid + b * grid_stride + *front;
    const int64_t index = (a * N_CODES + *cell) * N_CODES + carry[b];
    *cell = t->front[index];
    carry_out[b] = t->carry[index];
    agent_out[b] = t->move[index] ? *front : position;
    dir_out[b] = t->dir[a * 4 + direction];
    return index;
}

/* A whole step, the state changed in place. Returns how many envs are done (their rows written to `rows`,
 * ascending), or -1, changing nothing, if an action is not one of the N_ACTIONS. */
int64_t engine_step(
    int64_t B, const int64_t *action,
    uint8_t *grid, int64_t grid_stride, /* (B, Hp * Wp) codes, padded by walls (engine.PAD) */
    int64_t *agent, int64_t *dir, int64_t *carry, int64_t *step_count, /* (B,) state */
    const int64_t *delta, const uint8_t *t_front, const int64_t *t_carry, const uint8_t *t_move,
    const uint8_t *t_goal, const uint8_t *t_lava, const int64_t *t_dir,
    const float *reward_tab, int64_t max_steps, /* [step count]: Minigrid's _reward() */
    float *reward, uint8_t *terminated, uint8_t *truncated, uint8_t *done, int64_t *rows)
{
    if (!valid_actions(B, action))
        return -1;
    const Tables t = {delta, t_front, t_move, t_goal, t_lava, t_carry, t_dir};
    int64_t n = 0, front;
    for (int64_t b = 0; b < B; b++) {
        const int64_t count = ++step_count[b];
        const int64_t index = move(b, action[b], grid, grid_stride, agent, dir, carry, &t, agent, dir, carry, &front);
        reward[b] = t_goal[index] ? reward_tab[count < max_steps ? count : max_steps] : 0.0f;
        terminated[b] = t_goal[index] | t_lava[index];
        truncated[b] = count >= max_steps;
        done[b] = terminated[b] | truncated[b];
        if (done[b])
            rows[n++] = b;
    }
    return n;
}

/* The move alone: the step count and the grid changed in place, the new position, direction and carried code
 * written to new tensors, with each env's front cell, table index, and whether it reached a goal or ended the
 * episode (a goal or lava). Returns 0, or -1, changing nothing, if an action is not one of the N_ACTIONS. */
int64_t engine_move(
    int64_t B, const int64_t *action, uint8_t *grid, int64_t grid_stride,
    const int64_t *agent, const int64_t *dir, const int64_t *carry, int64_t *step_count,
    const int64_t *delta, const uint8_t *t_front, const int64_t *t_carry, const uint8_t *t_move,
    const uint8_t *t_goal, const uint8_t *t_lava, const int64_t *t_dir,
    int64_t *agent_out, int64_t *dir_out, int64_t *carry_out,
    int64_t *front_out, int64_t *index_out, uint8_t *goal, uint8_t *terminated)
{
    if (!valid_actions(B, action))
        return -1;
    const Tables t = {delta, t_front, t_move, t_goal, t_lava, t_carry, t_dir};
    for (int64_t b = 0; b < B; b++) {
        ++step_count[b];
        const int64_t index = move(b, action[b], grid, grid_stride, agent, dir, carry, &t, agent_out, dir_out,
                                   carry_out, &front_out[b]);
        index_out[b] = index;
        goal[b] = t_goal[index];
        terminated[b] = t_goal[index] | t_lava[index];
    }
    return 0;
}
