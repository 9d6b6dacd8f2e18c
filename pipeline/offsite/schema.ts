import { z } from "zod";

/**
 * The `offsite` config section: named S3 destinations a sealed set is copied
 * to. Built from config.ts's own field builders (secret references,
 * durations, the retention schema) so both read the same way.
 */

export const DESTINATION_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** age X25519 recipients (what `age-keygen` prints as "public key"). */
export const AGE_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;

type Builders = {
  secretRef: (what: string) => z.ZodString;
  duration: (what: string) => z.ZodString;
  retention: z.ZodType;
};

export function offsiteSchema(b: Builders) {
  const EncryptSchema = z
    .strictObject({
      recipients: z
        .array(z.string().regex(AGE_RECIPIENT, { message: 'must be an age X25519 public key ("age1" + 58 characters, as age-keygen prints)' }))
        .min(1)
        .meta({ description: "age X25519 public keys every file is encrypted to (any one of their private keys decrypts)." }),
      identity: b
        .secretRef("age private key (AGE-SECRET-KEY-1..., or an age-keygen key file), needed only to pull, verify --read-data and drill")
        .optional(),
    })
    .meta({ description: "Client-side encryption with age: every file is encrypted before it leaves this machine." });

  const OffsiteFreshnessSchema = z
    .strictObject({
      warnAfter: b.duration("WARNING once the newest verified copy at this destination is older than this.").default("26h"),
      criticalAfter: b.duration("CRITICAL once the newest verified copy at this destination is older than this.").default("50h"),
      drillMaxAge: z
        .union([b.duration("A copy is proven only by a passing restore-drill --from this destination within this age."), z.literal("off")])
        .default("off")
        .meta({ description: 'A passing `restore-drill --from` this destination must be this recent (on the newest copy or a newer one); "off" (default) does not check.' }),
    })
    .meta({ description: "Freshness thresholds of this destination's copies." });

  const DestinationSchema = z
    .strictObject({
      endpoint: z.url({ protocol: /^https?$/ }).meta({ description: "S3 endpoint URL, e.g. https://s3.eu-central-1.amazonaws.com or http://127.0.0.1:7070." }),
      bucket: z.string().min(3).max(63).meta({ description: "Bucket the copies go to (must exist)." }),
      prefix: z
        .string()
        .regex(/^(?!\/)([^/]+\/)*([^/]+)?$/, { message: 'must be a relative key prefix such as "backup-drill/prod" (no leading or double "/")' })
        .default("")
        .meta({ description: "Key prefix under which each set is stored as <prefix>/<set id>/." }),
      region: z.string().min(1).default("us-east-1"),
      accessKey: b.secretRef("Access key"),
      secretKey: b.secretRef("Secret key"),
      pathStyle: z.boolean().default(true).meta({ description: "Path-style requests (endpoint/bucket/key); false: virtual-host style (bucket.endpoint/key)." }),
      encrypt: EncryptSchema.optional(),
      pushAfterBackup: z.boolean().default(true).meta({ description: "`backup` pushes each new set here after sealing it." }),
      concurrency: z.number().int().min(1).max(32).default(4).meta({ description: "Files uploaded or downloaded at once." }),
      partSizeMiB: z
        .number()
        .int()
        .min(5)
        .max(512)
        .default(16)
        .meta({ description: "Multipart part size in MiB (files above it go up in parts; memory use is about concurrency x part size)." }),
      freshness: OffsiteFreshnessSchema.default({ warnAfter: "26h", criticalAfter: "50h", drillMaxAge: "off" }),
      retention: b.retention.optional().meta({ description: "Retention of the copies at this destination (default: the top-level retention)." }),
    })
    .meta({ description: "One S3 destination (any S3-compatible server)." });

  return z
    .strictObject({
      destinations: z
        .record(z.string().regex(DESTINATION_NAME, { message: "destination names are lowercase letters, digits, - and _" }), DestinationSchema)
        .refine((d) => Object.keys(d).length > 0, { message: "name at least one destination" }),
    })
    .meta({ description: "Offsite copies: `push` copies sealed sets to these S3 destinations (encrypted when `encrypt` is set)." });
}

export type OffsiteFileSection = z.infer<ReturnType<typeof offsiteSchema>>;
export type DestinationFileSection = OffsiteFileSection["destinations"][string];
