// What the dashboard is showing (who is signed in, which org and range, which page) and the one DOM helper.
export const $ = (id) => document.getElementById(id);

export const state = {
  me: null,
  /** '' = all organizations (admins only). */
  org: '',
  rangeDays: 30,
  /** Cursors of the pages already seen: [null (page 1), cursor of page 2, ...]. */
  pages: [null],
  charts: [],
};
