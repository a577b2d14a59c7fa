/** Marks a GET that answers a HEAD, so routes can skip reading bodies from storage. */
export const HEAD_MARKER = "x-garret-head";
