"""The compiled per-rating SGD kernel of :class:`~latentrec.BiasedMF` with side features and
SVD++'s "items this user rated" group (numba; the CPU engine of the hybrid model).

Model, on ratings divided by their standard deviation::

    r_hat(u, i) = mu + B_u + B_i + P_u . Q_i
    P_u = own_u p_u + sum_c U_uc e_c        B_u = own_u b_u + sum_{c < bias_u} U_uc a_c
    Q_i = own_i q_i + sum_c I_ic g_c        B_i = own_i b_i + sum_{c < bias_i} I_ic h_c

``U`` is the users' design matrix (the feature columns, whose first ``bias_u`` have biases,
then the seen items, weighed ``n^-seen_power``), ``I`` the items' (feature columns only);
``own`` is 1 for ids that keep their own embedding, 0 for ids known by their features alone
(``identity=False``).

Ratings run grouped by user (users in a random order, a user's ratings from a random one on,
in an order shuffled once), as in MyMediaLite's SVD++. The ids' own rows and biases take
plain SGD steps per rating (``lr``, ``lr_bias``, errors taken before the update, the
penalties ``reg`` and ``reg_bias`` of the minibatch engine). The group rows (feature
embeddings, SVD++'s ``y``) are shared by many ratings, so they take AdaGrad steps (``lr *
GROUP_LR_RATIO / sqrt(sum of squared gradients)``, one sum per row) on gradients summed over
several ratings:

- a user's group part ``sum_c U_uc e_c`` is summed once per user and its gradient applied
  when the user is done, so SVD++'s sum over a user's items costs once per user, not once per
  rating;
- an item's feature rows are read on each of its ratings (an item has a few), and their
  gradients are summed per feature column and applied every ``FLUSH_EVERY`` ratings, so the
  columns every rating shares (a genre) take a few thousand AdaGrad steps an epoch, not one
  per rating.

The penalty of a group row is ``feature_reg * |x|`` per rating that it enters with weight
``x`` (``reg_bias * |x|`` for its bias), as in the minibatch engine; summed over the ratings
of a step, it shrinks the row by at most all of it.

Each float32 array is updated in place; the sum of squared errors comes back as float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["FLUSH_EVERY", "GROUP_LR_RATIO", "MIN_FLUSHES", "group_by_user", "hybrid_sgd_epoch"]

#: the group rows' AdaGrad step is ``lr * GROUP_LR_RATIO / sqrt(sum of squared gradients)``;
#: chosen on a 10% validation split of MovieLens 100K ``u1.base`` (features and seen items,
#: defaults otherwise; ``feature_reg`` 0.06 / 0.15): RMSE 0.9008 / 0.8996 with 0.1, 0.9036 /
#: 0.9004 with 0.3, 0.9065 / 0.9011 with 1 at 100 factors. 0.3 rather than 0.1: planted data
#: of 1,200 ratings learns its features' signal with 0.3 in the default 30 epochs, not with 0.1
GROUP_LR_RATIO = 0.3
#: the item columns' summed gradients are applied every this many ratings (same split, an
#: earlier variant of the kernel: 0.9001 every 4,096 ratings, 0.9003 every 1,024, 0.9042
#: every 16,384), and at least MIN_FLUSHES times an epoch
FLUSH_EVERY = 4096
MIN_FLUSHES = 16
#: AdaGrad's guard against dividing by zero (its sums start at 0)
_EPSILON = 1e-10


@njit(cache=True)
def group_by_user(user_index: np.ndarray, n_users: int, shuffled: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``shuffled`` (a permutation of the ratings) stably sorted by user, and where
    each user's run starts: ``(order, rating_ptr)``, user ``u``'s ratings at
    ``order[rating_ptr[u]:rating_ptr[u + 1]]`` in their shuffled order (one counting sort,
    O(ratings + users))."""
    rating_ptr = np.zeros(n_users + 1, dtype=np.int64)
    for t in range(shuffled.shape[0]):
        rating_ptr[user_index[t] + 1] += 1
    for user in range(n_users):
        rating_ptr[user + 1] += rating_ptr[user]
    fill = rating_ptr[:-1].copy()
    order = np.empty(shuffled.shape[0], dtype=np.int64)
    for t in range(shuffled.shape[0]):
        position = shuffled[t]
        user = user_index[position]
        order[fill[user]] = position
        fill[user] += 1
    return order, rating_ptr


@njit(cache=True, fastmath=True, inline="always", error_model="numpy")
def _add_groups(row: int, indptr: np.ndarray, columns: np.ndarray, values: np.ndarray,
                factors: np.ndarray, bias: np.ndarray, out: np.ndarray) -> np.float32:
    """Add design row ``row`` times the group rows (``sum_c x_c e_c``) to ``out``; returns
    the same sum of the biases (the leading columns have them)."""
    total = np.float32(0.0)
    for p in range(indptr[row], indptr[row + 1]):
        c, x = columns[p], values[p]
        for f in range(out.shape[0]):
            out[f] += x * factors[c, f]
        if c < bias.shape[0]:
            total += x * bias[c]
    return total


@njit(cache=True, fastmath=True, inline="always", error_model="numpy")
def _adagrad_row(row: np.ndarray, grad: np.ndarray, scale: float, grad_squares: float,
                 penalty: float, squares: np.ndarray, c: int, lr: float) -> None:
    """One AdaGrad step of group row ``c`` on the summed gradient ``scale * grad`` of the data
    (``grad_squares``: the sum of ``grad``'s squares; AdaGrad's sums take the data's gradient
    alone, so one pass over the row does), with the summed weight ``penalty`` of its penalty
    as a shrink of at most all of the row."""
    k = row.shape[0]
    squares[c] += np.float32(scale * scale * grad_squares / k)
    step = np.float32(lr / np.sqrt(squares[c] + _EPSILON))
    shrink = np.float32(max(0.0, 1.0 - float(step) * penalty))
    scaled = step * np.float32(scale)
    for f in range(k):
        row[f] = shrink * row[f] + scaled * grad[f]


@njit(cache=True, fastmath=True, inline="always", error_model="numpy")
def _adagrad_bias(bias: np.ndarray, squares: np.ndarray, c: int, grad: float, penalty: float,
                  lr: float) -> None:
    """The same step for the bias of feature column ``c``, with AdaGrad sums of its own (a
    bias's gradient has another scale than its row's)."""
    squares[c] += np.float32(grad * grad)
    step = lr / np.sqrt(squares[c] + _EPSILON)
    shrink = max(0.0, 1.0 - step * penalty)
    bias[c] = np.float32(shrink) * bias[c] + np.float32(step * grad)


@njit(cache=True, fastmath=True, error_model="numpy")
def _flush_columns(factors: np.ndarray, bias: np.ndarray, squares: np.ndarray,
                   bias_squares: np.ndarray, column_grad: np.ndarray,
                   column_bias_grad: np.ndarray, column_weight: np.ndarray, lr: float,
                   bias_lr: float, feature_reg: float, reg_bias: float) -> None:
    """Apply the item columns' gradients summed since the last flush (``column_weight``: the
    summed ``|x|`` of the ratings they entered), then zero the sums."""
    k = factors.shape[1]
    for c in range(factors.shape[0]):
        if column_weight[c] == 0.0:
            continue
        grad_squares = 0.0
        for f in range(k):
            grad_squares += column_grad[c, f] * column_grad[c, f]
        _adagrad_row(factors[c], column_grad[c], 1.0, grad_squares,
                     feature_reg * column_weight[c], squares, c, lr)
        if c < bias.shape[0]:
            _adagrad_bias(bias, bias_squares, c, column_bias_grad[c],
                          reg_bias * column_weight[c], bias_lr)
        column_grad[c, :] = 0.0
        column_bias_grad[c] = 0.0
        column_weight[c] = 0.0


@njit(cache=True, fastmath=True, error_model="numpy")
def hybrid_sgd_epoch(
    rating_ptr: np.ndarray, item_index: np.ndarray, ratings: np.ndarray,
    user_order: np.ndarray, rotations: np.ndarray,
    user_factors: np.ndarray, item_factors: np.ndarray,
    user_bias: np.ndarray, item_bias: np.ndarray,
    user_own: np.ndarray, item_own: np.ndarray,
    user_indptr: np.ndarray, user_columns: np.ndarray, user_values: np.ndarray,
    user_group_factors: np.ndarray, user_group_bias: np.ndarray, user_group_squares: np.ndarray,
    user_bias_squares: np.ndarray,
    item_indptr: np.ndarray, item_columns: np.ndarray, item_values: np.ndarray,
    item_group_factors: np.ndarray, item_group_bias: np.ndarray, item_group_squares: np.ndarray,
    item_bias_squares: np.ndarray,
    global_mean: float, lr: float, reg: float, reg_bias: float, lr_bias: float,
    feature_reg: float, group_lr: float, flush_every: int,
) -> float:
    """One epoch over ratings stored grouped by user: user ``u``'s are ``item_index`` and
    ``ratings`` at ``rating_ptr[u]:rating_ptr[u + 1]`` (:func:`group_by_user`). Users run in
    ``user_order``; a user's ratings from ``rotations[u] % count`` on, wrapping around (each
    epoch sees them in another order at the cost of one draw per user).

    ``*_own``: float32 1/0 per id; ``*_indptr/columns/values``: the design matrices (CSR, one
    row per id); ``*_group_factors``: one row per design column; ``*_group_bias``: one entry
    per design column that has a bias (the leading columns); ``*_group_squares``: AdaGrad's
    sums of squared gradients of the columns. Returns the sum of squared errors."""
    k = user_factors.shape[1]
    n_item_columns = item_group_factors.shape[0]
    mu = np.float32(global_mean)
    lr32, reg32 = np.float32(lr), np.float32(reg)
    lb32, rb32 = np.float32(lr_bias), np.float32(reg_bias)
    # the feature biases step by lr_bias / lr times the rows' rate (0 once lr decayed to 0)
    bias_lr = group_lr * lr_bias / lr if lr > 0.0 else 0.0
    user_biased = user_group_bias.shape[0]
    group_part = np.zeros(k, dtype=np.float32)   # sum_c U_uc e_c of the current user
    group_grad = np.zeros(k, dtype=np.float32)   # its gradient, summed over the user's ratings
    pu = np.zeros(k, dtype=np.float32)
    qi = np.zeros(k, dtype=np.float32)
    # the item columns' gradients, summed between flushes
    column_grad = np.zeros((n_item_columns, k), dtype=np.float32)
    column_bias_grad = np.zeros(n_item_columns, dtype=np.float32)
    column_weight = np.zeros(n_item_columns, dtype=np.float32)
    has_item_groups = n_item_columns > 0
    since_flush = 0
    sse = 0.0
    for u in user_order:
        start, stop = rating_ptr[u], rating_ptr[u + 1]
        count = stop - start
        if count == 0:
            continue
        offset = start + rotations[u] % count
        own_u = user_own[u]
        group_part[:] = 0.0
        group_grad[:] = 0.0
        group_bias = _add_groups(u, user_indptr, user_columns, user_values, user_group_factors,
                                 user_group_bias, group_part)
        bias_grad = np.float32(0.0)
        for s in range(count):
            position = offset + s
            if position >= stop:
                position -= count
            i = item_index[position]
            own_i = item_own[i]
            for f in range(k):
                qi[f] = own_i * item_factors[i, f]
            item_bias_sum = own_i * item_bias[i] + _add_groups(
                i, item_indptr, item_columns, item_values, item_group_factors, item_group_bias,
                qi)
            dot = np.float32(0.0)
            for f in range(k):
                pu[f] = own_u * user_factors[u, f] + group_part[f]
                dot += pu[f] * qi[f]
            err = (np.float32(ratings[position]) - mu - own_u * user_bias[u] - group_bias
                   - item_bias_sum - dot)
            sse += float(err) * float(err)
            # ids known by their features alone (own 0) leave their own rows untouched
            user_lr, item_lr = own_u * lr32, own_i * lr32
            for f in range(k):
                g = err * qi[f]
                group_grad[f] += g
                user_factors[u, f] += user_lr * (g - reg32 * user_factors[u, f])
                item_factors[i, f] += item_lr * (err * pu[f] - reg32 * item_factors[i, f])
            for p in range(item_indptr[i], item_indptr[i + 1]):
                c, x = item_columns[p], item_values[p]
                scaled = x * err
                for f in range(k):
                    column_grad[c, f] += scaled * pu[f]
                column_bias_grad[c] += scaled
                column_weight[c] += abs(x)
            user_bias[u] += own_u * lb32 * (err - rb32 * user_bias[u])
            item_bias[i] += own_i * lb32 * (err - rb32 * item_bias[i])
            bias_grad += err
        grad_squares = 0.0
        for f in range(k):
            grad_squares += group_grad[f] * group_grad[f]
        for p in range(user_indptr[u], user_indptr[u + 1]):
            c, x = user_columns[p], user_values[p]
            _adagrad_row(user_group_factors[c], group_grad, x, grad_squares,
                         feature_reg * abs(x) * count, user_group_squares, c, group_lr)
            if c < user_biased:
                _adagrad_bias(user_group_bias, user_bias_squares, c, x * bias_grad,
                              reg_bias * abs(x) * count, bias_lr)
        since_flush += count
        if has_item_groups and since_flush >= flush_every:
            _flush_columns(item_group_factors, item_group_bias, item_group_squares,
                           item_bias_squares, column_grad, column_bias_grad, column_weight,
                           group_lr, bias_lr, feature_reg, reg_bias)
            since_flush = 0
    if has_item_groups and since_flush > 0:  # the epoch's last gradients
        _flush_columns(item_group_factors, item_group_bias, item_group_squares,
                       item_bias_squares, column_grad, column_bias_grad, column_weight,
                       group_lr, bias_lr, feature_reg, reg_bias)
    return sse
