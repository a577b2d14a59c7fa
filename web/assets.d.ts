// The dashboard's sources are imported as text by src/server/dashboard.ts (Bun's `type: "text"`).
declare module "*.css" {
  const text: string;
  export default text;
}
