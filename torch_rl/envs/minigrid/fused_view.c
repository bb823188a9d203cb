/* The agent's view of a batch of envs in one loop: the same bytes as BatchedMiniGridEnv's tensor ops
 * (engine.py, _view_codes and _render; the rule: view.py), so those run on CUDA and this on the CPU. Reads only
 * the given rows' grids and writes only `out`, (m, V, V, 3) uint8 in Minigrid's image order. V (the view's size)
 * and C_OPAQUE0 (the first code that blocks the view) come from the Python modules as -D flags (fused.py). */
#include <stdint.h>
#include <string.h>

#define NC (V * V)
#define AGENT_CELL ((V / 2) * V + V - 1) /* the agent's cell, (i, j) = (V // 2, V - 1), in image order */

void render_views(
    const uint8_t *grid, int64_t grid_stride, /* (B, Hp * Wp) codes, padded by walls (engine.PAD) */
    const int64_t *rows, int64_t m, int scatter, /* rows to render (NULL: 0..m-1); scatter: row r to out[r] */
    const int64_t *agent, const int64_t *dir, const int64_t *carry, /* (B,) flat position, direction, code */
    const int64_t *view_off, /* (4, NC) per direction, the view cells' flat offsets, image order i * V + j */
    const int64_t *vis_first, const int64_t *vis_next, /* view.chained_row_tables */
    int occlude, /* occlusion unless the family sees through walls */
    const uint8_t *encodings, /* (256, 3) Minigrid's encoding of each code */
    uint8_t *out)
{
    const int64_t full = (1 << V) - 1, high = full << V;
    uint32_t enc[256]; /* each encoding as 4 bytes, so a cell is written with one 4-byte copy */
    for (int c = 0; c < 256; c++)
        enc[c] = encodings[3 * c] | (uint32_t)encodings[3 * c + 1] << 8 | (uint32_t)encodings[3 * c + 2] << 16;
    for (int64_t n = 0; n < m; n++) {
        const int64_t r = rows ? rows[n] : n;
        const uint8_t *at = grid + r * grid_stride + agent[r];
        const int64_t *off = view_off + dir[r] * NC;
        uint8_t codes[NC];
        for (int k = 0; k < NC; k++)
            codes[k] = at[off[k]];
        if (occlude) {
            int64_t see[V] = {0}; /* see[j]: bit i set if cell (i, j) is see-through */
            for (int i = 0; i < V; i++)
                for (int j = 0; j < V; j++)
                    see[j] |= (int64_t)(codes[i * V + j] < C_OPAQUE0) << i;
            int64_t vis[V]; /* the rows' chained entries, from the agent's row up; bit i: cell (i, j) visible */
            vis[V - 1] = vis_first[see[V - 1]];
            for (int j = V - 2; j >= 0; j--)
                vis[j] = vis_next[(vis[j + 1] & high) | see[j]];
            for (int i = 0; i < V; i++)
                for (int j = 0; j < V; j++)
                    codes[i * V + j] &= (uint8_t)-((vis[j] >> i) & 1); /* hidden: code 0, unseen */
        }
        codes[AGENT_CELL] = (uint8_t)carry[r];
        uint8_t *o = out + (scatter ? r : n) * NC * 3;
        for (int k = 0; k < NC - 1; k++)
            memcpy(o + 3 * k, &enc[codes[k]], 4); /* its 4th byte is overwritten by the next cell */
        memcpy(o + 3 * (NC - 1), &enc[codes[NC - 1]], 3);
    }
}
