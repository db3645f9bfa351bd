using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using SystemContainers.Api;
using SystemContainers.Engine;
using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Containers;
using SystemContainers.Engine.Files;
using SystemContainers.Engine.Host;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Storage;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Daemon;

/// <summary>The /1.0 REST API, shaped like LXD's: sync responses, async operations, events.</summary>
public sealed class RestApi(DaemonOptions options, ContainerService containers, ImageStore images,
    OperationRegistry operations, EventHub events, ImageSecrets imageSecrets, MigrationSources migrations)
{
    private readonly HostCheck _hostCheck = new(options.Engine);

    public void Map(WebApplication app)
    {
        app.MapGet("/1.0/containers", (HttpContext ctx) => ctx.Request.Query["recursion"].ToString() switch
        {
            "1" => Sync(containers.List().Select(ToApi).ToList()),
            "2" => Sync(containers.StatsOfAll().Select(ToApi).ToList()),
            _ => Sync(containers.List().Select(c => $"/1.0/containers/{c.Name}").ToList()),
        });
        app.MapPost("/1.0/containers", async (HttpContext ctx) =>
        {
            if (ctx.Request.ContentType == BackupContentType) return await ImportBackup(ctx);
            var req = await Body<ContainerCreateRequest>(ctx);
            Require(req.Name, "name");
            if (req.Source is not null) return CopyRequest(req, req.Source);
            Require(req.Image, "image");
            var created = containers.Create(req.Name, req.Image!, req.Config, req.StoragePool);
            if (!req.Start) return Sync(ToApi(created), 201);
            return Async(operations.Start($"start container {req.Name}", Resource(req.Name),
                async op => ToApi(await containers.StartAsync(req.Name, op.Cancellation.Token, created.Id)), throttled: true, inline: WaitSeconds(ctx) > 0));
        });
        app.MapGet("/1.0/containers/{name}", (string name) => Sync(ToApi(containers.Get(name))));
        app.MapDelete("/1.0/containers/{name}", (string name, HttpContext ctx) =>
        {
            var id = containers.Get(name).Id;
            bool force = ctx.Request.Query["force"] == "1";
            return Async(operations.Start($"Deleting container {name}", Resource(name), async op =>
            {
                await containers.DeleteAsync(name, force, op.Cancellation.Token, id);
                return null;
            }, throttled: true));
        });
        app.MapPatch("/1.0/containers/{name}", async (string name, HttpContext ctx) =>
        {
            var req = await Body<ContainerUpdateRequest>(ctx);
            if (req.Config is null || req.Config.Count == 0) throw EngineException.Invalid("InvalidRequest", "request field 'config' must name at least one key");
            var id = containers.Get(name).Id;
            return Async(operations.Start($"Updating container {name}", Resource(name),
                async op => ToApi(await containers.UpdateConfigAsync(name, req.Config, op.Cancellation.Token, id))));
        });
        app.MapPost("/1.0/containers/{name}", async (string name, HttpContext ctx) =>
        {
            var req = await Body<ContainerPostRequest>(ctx);
            if (req.Migration) return MigrationRequest(name, req);
            if (string.IsNullOrEmpty(req.Name)) throw EngineException.Invalid("InvalidRequest", "request field 'name' is required");
            return Async(operations.Start($"Renaming container {name} to {req.Name}", Resource(name),
                async op => ToApi(await containers.RenameAsync(name, req.Name, op.Cancellation.Token))));
        });
        app.MapGet("/1.0/containers/{name}/state", (string name) => Sync(ToApi(containers.Stats(name))));
        // Files in and out, as one streamed tar either way (FileArchive): a tree of many small
        // files is one request, not one per file. A missing source or a refused destination is
        // an error before the stream starts; a failure once it runs closes the archive.
        app.MapGet("/1.0/containers/{name}/files", async (string name, HttpContext ctx) =>
        {
            using var pull = await containers.PullFilesAsync(name, ctx.Request.Query["path"].ToString(), ctx.Request.Query["recurse"] == "1", ctx.RequestAborted);
            ctx.Response.ContentType = FileArchive.ContentType;
            await pull.WriteAsync(ctx.Response.Body, ctx.RequestAborted);
            return Results.Empty;
        });
        app.MapPost("/1.0/containers/{name}/files", async (string name, HttpContext ctx) =>
        {
            if (ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = null;
            try
            {
                var done = await containers.PushFilesAsync(name, ctx.Request.Query["path"].ToString(), ctx.Request.Query["force"] == "1", ctx.Request.Body, ctx.RequestAborted);
                return Sync(new FilePushSummary(done.Files, done.Directories, done.Links, done.Bytes, done.Skipped.ToList()));
            }
            catch (Exception e) when (e is EngineException or NativeException or InvalidDataException)
            {
                // The client is still sending: read the rest, so it gets the answer rather than a reset.
                await ctx.Request.Body.CopyToAsync(Stream.Null, ctx.RequestAborted);
                if (e is InvalidDataException) throw EngineException.Invalid("InvalidArchive", $"the request body is not a valid tar archive: {e.Message}");
                throw;
            }
        });
        // A backup tarball streamed out as it is written (ExportContainer); a refusal, or a failure before the first
        // byte is sent, is an error answer; a failure after it cuts the stream, which the client reports as broken.
        app.MapGet("/1.0/containers/{name}/backup", async (string name, HttpContext ctx) =>
        {
            var options = new ExportOptions(ctx.Request.Query["snapshots"] == "1", ctx.Request.Query["optimized"] == "1", Compression(ctx));
            using var export = await containers.ExportAsync(name, options, ctx.RequestAborted);
            ctx.Response.ContentType = BackupContentType;
            try
            {
                await export.WriteAsync(ctx.Response.Body, ctx.RequestAborted);
            }
            catch (Exception e) when (ctx.Response.HasStarted || ctx.RequestAborted.IsCancellationRequested)
            {
                if (!ctx.RequestAborted.IsCancellationRequested) DaemonLog.Failure($"export of container {name}", e);
                ctx.Abort();
            }
            return Results.Empty;
        });
        app.MapGet("/1.0/metrics", () => Results.Text(PrometheusMetrics.Render(containers.StatsOfAll()),
            "text/plain; version=0.0.4; charset=utf-8"));
        app.MapPut("/1.0/containers/{name}/state", async (string name, HttpContext ctx) =>
        {
            var req = await Body<ContainerStateRequest>(ctx);
            var id = containers.Get(name).Id;
            var action = StateAction(req.Action, req.Force, req.Timeout, req.Stateful, req.Stateless);
            // A stop mostly waits for the container's init: only starts take a throttled turn.
            return Async(operations.Start($"{req.Action} container {name}", Resource(name),
                async op => ToApi(await action(name, id, op.Cancellation.Token)), throttled: req.Action == "start", inline: WaitSeconds(ctx) > 0));
        });
        // Fleets: one request for many containers, run Parallel at a time; each name gets its own
        // answer in the operation's result. Starts and deletes still take the daemon's throttled turns.
        app.MapPut("/1.0/containers/state", async (HttpContext ctx) =>
        {
            var req = await Body<ContainerBulkStateRequest>(ctx);
            var names = Bulk.Names(req.Names);
            int parallel = Bulk.Parallel(req.Parallel);
            var action = StateAction(req.Action, req.Force, req.Timeout, req.Stateful, req.Stateless);
            return Async(operations.Start($"{req.Action} {names.Count} containers", Resources(names), async op =>
                await Bulk.RunAsync(names, parallel, async (name, ct) =>
                {
                    var id = containers.Get(name).Id;
                    return req.Action == "start"
                        ? await operations.InTurnAsync(async () => ToApi(await action(name, id, ct)), ct)
                        : ToApi(await action(name, id, ct));
                }, op.Cancellation.Token), inline: WaitSeconds(ctx) > 0));
        });
        app.MapDelete("/1.0/containers", async (HttpContext ctx) =>
        {
            var req = await Body<ContainerBulkDeleteRequest>(ctx);
            var names = Bulk.Names(req.Names);
            int parallel = Bulk.Parallel(req.Parallel);
            return Async(operations.Start($"Deleting {names.Count} containers", Resources(names), async op =>
                await Bulk.RunAsync(names, parallel, async (name, ct) =>
                {
                    var id = containers.Get(name).Id;
                    return await operations.InTurnAsync<SystemContainer?>(async () =>
                    {
                        await containers.DeleteAsync(name, req.Force, ct, id);
                        return null;
                    }, ct);
                }, op.Cancellation.Token), inline: WaitSeconds(ctx) > 0));
        });
        app.MapGet("/1.0/containers/{name}/snapshots", (string name, HttpContext ctx) =>
            ctx.Request.Query["recursion"] == "1"
                ? Sync(containers.Snapshots(name).Select(s => ToApi(name, s)).ToList())
                : Sync(containers.Snapshots(name).Select(s => $"/1.0/containers/{name}/snapshots/{s.Name}").ToList()));
        app.MapPost("/1.0/containers/{name}/snapshots", async (string name, HttpContext ctx) =>
        {
            var req = await Body<SnapshotCreateRequest>(ctx);
            return Sync(ToApi(name, await containers.SnapshotAsync(name, req.Name, ctx.RequestAborted, req.ExpiresAt, req.Stateful)), 201);
        });
        app.MapPost("/1.0/containers/{name}/snapshots/{snapshot}/restore", async (string name, string snapshot, HttpContext ctx) =>
        {
            // A request without a JSON body (older clients) restores the files only.
            var req = ctx.Request.ContentLength is not 0 && ctx.Request.HasJsonContentType() ? await Body<SnapshotRestoreRequest>(ctx) : new SnapshotRestoreRequest();
            return Sync(ToApi(await containers.RestoreSnapshotAsync(name, snapshot, ctx.RequestAborted, req.Stateful)));
        });
        app.MapPost("/1.0/containers/{name}/snapshots/{snapshot}", async (string name, string snapshot, HttpContext ctx) =>
        {
            var req = await Body<SnapshotRenameRequest>(ctx);
            if (string.IsNullOrEmpty(req.Name)) throw EngineException.Invalid("InvalidRequest", "request field 'name' is required");
            return Sync(ToApi(name, await containers.RenameSnapshotAsync(name, snapshot, req.Name, ctx.RequestAborted)));
        });
        app.MapDelete("/1.0/containers/{name}/snapshots/{snapshot}", async (string name, string snapshot, HttpContext ctx) =>
        {
            await containers.DeleteSnapshotAsync(name, snapshot, ctx.RequestAborted);
            return Sync<object?>(null);
        });
        app.MapGet("/1.0/containers/{name}/console", (string name, HttpContext ctx) =>
        {
            string path = containers.ConsoleLogPath(name);
            string from = ctx.Request.Query["from"].ToString();
            if (from.Length == 0) return Sync(ConsoleLog.ReadFrom(path, 0).Text);
            if (!long.TryParse(from, out long offset) || offset < 0)
                throw EngineException.Invalid("InvalidRequest", $"from '{from}' is not a byte offset");
            var chunk = ConsoleLog.ReadFrom(path, offset);
            return Sync(new ConsoleLogChunk(chunk.Text, chunk.Next, chunk.Restarted));
        });
        app.MapPost("/1.0/containers/{name}/exec", async (string name, HttpContext ctx) =>
        {
            var req = await Body<ExecCommandRequest>(ctx);
            var session = containers.Exec(name, ExecRequestOf(req));
            if (!req.Interactive && !req.Stream)
            {
                return Async(operations.Start($"Executing command in {name}", Resource(name), async op =>
                {
                    using (session)
                    {
                        var output = await session.CollectAsync(op.Cancellation.Token);
                        return new ExecCommandResult(output.ExitCode, Encoding.UTF8.GetString(output.Stdout), Encoding.UTF8.GetString(output.Stderr));
                    }
                }));
            }
            var attached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var bridged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var opRecord = operations.Start($"{(req.Interactive ? "Interactive" : "Streamed")} command in {name}", Resource(name), async op =>
            {
                using (session)
                {
                    // Cancelling the operation (DELETE /1.0/operations/{id}) ends the command.
                    using var cancel = op.Cancellation.Token.Register(() => _ = session.CancelAsync());
                    // Nobody attaching in time: end the command, whose output nobody would read. The
                    // deadline claims the attachment as a websocket does, so a late one is refused
                    // rather than bridged to a session that is being ended.
                    if (await Task.WhenAny(attached.Task, Task.Delay(AttachDeadline)) != attached.Task && attached.TrySetCanceled())
                    {
                        await session.CancelAsync();
                        await session.Completion;
                        throw EngineException.Conflict("NotAttached", $"no websocket attached within {AttachDeadline.TotalSeconds} s, so the command was ended");
                    }
                    var (code, error) = await session.Completion;
                    // The session's streams are the bridge's until it has forwarded the last output.
                    if (attached.Task.IsCompleted) await bridged.Task;
                    op.Cancellation.Token.ThrowIfCancellationRequested();
                    if (error is null) return new ExecCommandResult(code, "", "");
                    // A command that could not start: on a terminal that is the operation's failure;
                    // streamed, it is the command's stderr, with exit code 126 or 127, as recorded.
                    if (session.Terminal is not null) throw new EngineException(FailureKind.Failed, "ExecFailed", error);
                    return new ExecCommandResult(code, "", error + "\n");
                }
            }, withSecret: true);
            opRecord.Attachment = new ExecAttachment(session, attached, bridged);
            return Async(opRecord);
        });
        // A streamed exec in one request: the websocket's first message is the request, and the
        // command's output follows on it with no operation to create, wait for or attach to.
        app.MapMethods("/1.0/containers/{name}/exec", WebSocketMethods, async (string name, HttpContext ctx) =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest)
                throw EngineException.Invalid("NotWebSocket", "this endpoint needs a websocket upgrade; POST runs a command without one");
            using var socket = await ctx.WebSockets.AcceptWebSocketAsync();
            ExecSession session;
            try
            {
                var req = await ExecWebSocket.ReadRequestAsync(socket, ctx.RequestAborted);
                if (req.Interactive) throw EngineException.Invalid("InvalidRequest", "an interactive command attaches to its operation's websocket");
                session = containers.Exec(name, ExecRequestOf(req));
            }
            catch (Exception e) when (e is EngineException or NativeException)
            {
                await ExecWebSocket.RefuseAsync(socket, e);
                return Results.Empty;
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                // The client went away before its request was read: there is nobody to answer.
                return Results.Empty;
            }
            using (session)
                await StreamBridge.RunAsync(socket, session, CancellationToken.None, ctx.RequestAborted);
            return Results.Empty;
        });

        app.MapGet("/1.0/images", (HttpContext ctx) =>
            ctx.Request.Query["recursion"] == "1"
                ? Sync(images.List().Select(ToApi).ToList())
                : Sync(images.List().Select(i => $"/1.0/images/{i.Fingerprint}").ToList()));
        app.MapGet("/1.0/images/{reference}", (string reference) => Sync(ToApi(images.Resolve(reference))));
        // The tarball the image came from, whose SHA-256 is its fingerprint. An untrusted daemon
        // gets here only with a secret of this image's, which the trust gate has used up.
        app.MapGet("/1.0/images/{reference}/export", (string reference) => Results.File(images.TarballOf(reference), "application/octet-stream"));
        app.MapPost("/1.0/images/{reference}/secret", async (string reference, HttpContext ctx) =>
        {
            bool hasBody = ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? true;
            var req = hasBody && ctx.Request.ContentLength != 0 ? await Body<ImageSecretRequest>(ctx) : new ImageSecretRequest();
            if (req.ExpiresInSeconds is < 1 or > MaxTimeoutSeconds)
                throw EngineException.Invalid("InvalidRequest", $"expires_in_seconds must be from 1 to {MaxTimeoutSeconds}, not {req.ExpiresInSeconds}");
            var image = images.Resolve(reference);
            // An image that could never be sent is refused now, not when the other daemon comes for it.
            images.TarballOf(image.Fingerprint);
            return Async(imageSecrets.Issue(image.Fingerprint, req.ExpiresInSeconds is int s ? TimeSpan.FromSeconds(s) : ImageSecrets.DefaultLifetime));
        });
        app.MapPost("/1.0/images", async (HttpContext ctx) =>
        {
            var req = await Body<ImageCreateRequest>(ctx);
            if (req.Source == "file")
            {
                Require(req.Path, "path");
                if (!Path.IsPathRooted(req.Path)) throw EngineException.Invalid("InvalidRequest", $"image file '{req.Path}' must be an absolute path");
            }
            Func<OperationRecord, Task<object?>> work = req.Source switch
            {
                "file" => async op =>
                {
                    return ToApi(await images.ImportAsync(req.Path!, req.Alias, req.Description ?? $"imported from {Path.GetFileName(req.Path)}",
                        new Progress<string>(op.Report), op.Cancellation.Token));
                },
                "busybox" => async op => ToApi(await BuildBusybox(req, op)),
                "pull" => async op => ToApi(await ImagePull.RunAsync(images, req, new Progress<string>(op.Report), op.Cancellation.Token)),
                "container" => PublishRequest(req),
                "debootstrap" => async op =>
                {
                    Require(req.Release, "release");
                    string tarball = await DebootstrapImageBuilder.BuildAsync(req.Release!, req.Mirror, options.Engine.CacheDir,
                        new Progress<string>(op.Report), op.Cancellation.Token);
                    return ToApi(await images.ImportAsync(tarball, req.Alias, req.Description ?? $"Debian {req.Release} with systemd (debootstrap)",
                        new Progress<string>(op.Report), op.Cancellation.Token));
                },
                _ => throw EngineException.Invalid("InvalidSource", $"image source '{req.Source}' is not file, busybox, debootstrap, pull or container"),
            };
            return Async(operations.Start($"Creating image ({req.Source})", new Dictionary<string, string[]>(), work));
        });
        app.MapPost("/1.0/images/aliases", async (HttpContext ctx) =>
        {
            var req = await Body<ImageAliasRequest>(ctx);
            Require(req.Name, "name");
            Require(req.Target, "target");
            return Sync(ToApi(await images.AddAliasAsync(req.Target!, req.Name!)));
        });
        app.MapDelete("/1.0/images/aliases/{name}", async (string name) => Sync(ToApi(await images.RemoveAliasAsync(name))));
        app.MapDelete("/1.0/images/{reference}", async (string reference) =>
        {
            await containers.RemoveImageAsync(reference);
            return Sync<object?>(null);
        });

        var networks = containers.Networks;
        app.MapGet("/1.0/networks", (HttpContext ctx) =>
            ctx.Request.Query["recursion"] == "1"
                ? Sync(networks.List().Select(ToApi).ToList())
                : Sync(networks.List().Select(n => $"/1.0/networks/{n.Name}").ToList()));
        app.MapPost("/1.0/networks", async (HttpContext ctx) =>
        {
            var req = await Body<NetworkCreateRequest>(ctx);
            Require(req.Name, "name");
            var created = ToApi(networks.Create(req.Name, req.Config));
            events.Lifecycle("network-created", $"/1.0/networks/{req.Name}");
            return Sync(created, 201);
        });
        app.MapGet("/1.0/networks/{name}", (string name) => Sync(ToApi(networks.Get(name))));
        app.MapPatch("/1.0/networks/{name}", async (string name, HttpContext ctx) =>
        {
            var req = await Body<NetworkUpdateRequest>(ctx);
            if (req.Config is null || req.Config.Count == 0) throw EngineException.Invalid("InvalidRequest", "request field 'config' must name at least one key");
            var updated = ToApi(networks.Update(name, req.Config));
            events.Lifecycle("network-updated", $"/1.0/networks/{name}");
            return Sync(updated);
        });
        app.MapDelete("/1.0/networks/{name}", (string name) =>
        {
            networks.Delete(name);
            events.Lifecycle("network-deleted", $"/1.0/networks/{name}");
            return Sync<object?>(null);
        });
        app.MapGet("/1.0/networks/{name}/leases", (string name) =>
            Sync(networks.Leases(name).Select(l => new SystemContainerNetworkLease
            {
                Network = name, Hostname = l.Hostname, HwAddr = l.HwAddr, Address = l.Address, Type = l.Type, Expires = l.Expires,
            }).ToList()));

        var storage = containers.Storage;
        app.MapGet("/1.0/storage-pools", (HttpContext ctx) =>
            ctx.Request.Query["recursion"] == "1"
                ? Sync(storage.List().Select(ToApi).ToList())
                : Sync(storage.List().Select(p => $"/1.0/storage-pools/{p.Pool.Name}").ToList()));
        app.MapPost("/1.0/storage-pools", async (HttpContext ctx) =>
        {
            var req = await Body<StoragePoolCreateRequest>(ctx);
            Require(req.Name, "name");
            Require(req.Driver, "driver");
            var created = ToApi(storage.Create(req.Name, req.Driver, req.Source, req.Config));
            events.Lifecycle("storage-pool-created", $"/1.0/storage-pools/{req.Name}");
            return Sync(created, 201);
        });
        app.MapGet("/1.0/storage-pools/{name}", (string name) => Sync(ToApi(storage.Get(name))));
        app.MapPatch("/1.0/storage-pools/{name}", async (string name, HttpContext ctx) =>
        {
            var req = await Body<StoragePoolUpdateRequest>(ctx);
            if (req.Config is null || req.Config.Count == 0) throw EngineException.Invalid("InvalidRequest", "request field 'config' must name at least one key");
            var updated = ToApi(storage.Update(name, req.Config));
            events.Lifecycle("storage-pool-updated", $"/1.0/storage-pools/{name}");
            return Sync(updated);
        });
        app.MapDelete("/1.0/storage-pools/{name}", (string name) =>
        {
            storage.Delete(name);
            events.Lifecycle("storage-pool-deleted", $"/1.0/storage-pools/{name}");
            return Sync<object?>(null);
        });

        app.MapGet("/1.0/host/checks", (HttpContext ctx) =>
            Sync(_hostCheck.Run(ContainerCount(ctx.Request.Query["containers"])).Select(ToApi).ToList()));
        app.MapPost("/1.0/host/checks/fix", async (HttpContext ctx) =>
        {
            int count = ContainerCount((await Body<HostFixRequest>(ctx)).Containers?.ToString());
            Cgroup2Options.AddGuarded();
            var changes = HostLimits.Fix(count, options.SysctlFile);
            return Sync(new HostFixResult(options.SysctlFile, [.. changes.Select(c => new HostSysctlChange(c.Key, c.Before, c.After))],
                [.. _hostCheck.Run(count).Select(ToApi)]));
        });

        app.MapGet("/1.0/operations", () => Sync(operations.All.Select(o => o.ToApi()).ToList()));
        app.MapGet("/1.0/operations/{id}", (string id) => Sync(operations.Get(id).ToApi()));
        app.MapDelete("/1.0/operations/{id}", (string id) =>
        {
            operations.Get(id).Cancellation.Cancel();
            return Sync<object?>(null);
        });
        app.MapGet("/1.0/operations/{id}/wait", async (string id, HttpContext ctx) =>
        {
            var op = operations.Get(id);
            int timeout = int.TryParse(ctx.Request.Query["timeout"], out int t) && t is >= 0 and <= MaxTimeoutSeconds ? t : MaxTimeoutSeconds;
            await Task.WhenAny(op.Done, Task.Delay(TimeSpan.FromSeconds(timeout), ctx.RequestAborted));
            return Sync(op.ToApi());
        });
        app.MapMethods("/1.0/operations/{id}/websocket", WebSocketMethods, async (string id, HttpContext ctx) =>
        {
            var op = operations.Get(id);
            if (op.Secret is null || ctx.Request.Query["secret"] != op.Secret || op.Attachment is not ExecAttachment exec)
                throw EngineException.Invalid("InvalidSecret", "websocket secret does not match an interactive or streamed operation");
            if (!ctx.WebSockets.IsWebSocketRequest)
                throw EngineException.Invalid("NotWebSocket", "this endpoint needs a websocket upgrade");
            if (!exec.Attached.TrySetResult())
                throw exec.Attached.Task.IsCanceled
                    ? EngineException.Conflict("AttachExpired", $"operation '{id}' waited {AttachDeadline.TotalSeconds} s for its websocket; its command was ended")
                    : EngineException.Conflict("AlreadyAttached", $"operation '{id}' already has a websocket attached");
            try
            {
                using var socket = await ctx.WebSockets.AcceptWebSocketAsync();
                if (exec.Session.Terminal is not null) await TerminalBridge.RunAsync(socket, exec.Session, ctx.RequestAborted);
                else await StreamBridge.RunAsync(socket, exec.Session, op.Cancellation.Token, ctx.RequestAborted);
            }
            finally
            {
                exec.Bridged.TrySetResult();
            }
            return Results.Empty;
        });
        // A migration operation's stream, for the daemon that pulls the container: an untrusted
        // one gets here only with the operation's secret, which the trust gate has used up.
        app.MapGet("/1.0/operations/{id}/stream", async (string id, HttpContext ctx) =>
        {
            var source = TrustGate.RedeemedMigration(ctx) ?? migrations.Redeem(id, ctx.Request.Query["secret"].ToString())
                ?? throw new EngineException(FailureKind.Forbidden, "InvalidSecret", $"the secret of operation '{id}' is unknown, already used or expired");
            await ContainerSend.RunAsync(containers, source, ctx.Request.Query["optimized"] == "1", ctx);
            return Results.Empty;
        });
        // A live move's target says whether it runs the container, with the control secret the stream carried.
        app.MapPost("/1.0/operations/{id}/control", (string id, HttpContext ctx, MigrationVerdict verdict) =>
        {
            var source = TrustGate.RedeemedMigration(ctx) ?? migrations.RedeemControl(id, ctx.Request.Query["secret"].ToString())
                ?? throw new EngineException(FailureKind.Forbidden, "InvalidSecret", $"the control secret of operation '{id}' is unknown or already used");
            if (!source.Verdict.TrySetResult(verdict))
                throw EngineException.Conflict("MoveEnded", $"the live move of operation '{id}' has ended already: {source.Verdict.Task.Result.Error}");
            return Sync<object?>(null);
        });
        app.MapGet("/1.0/events/recent", (HttpContext ctx) => Sync(events.Recent(EventTypes(ctx))));
        app.MapMethods("/1.0/events", WebSocketMethods, async (HttpContext ctx) =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest)
                throw EngineException.Invalid("NotWebSocket", "/1.0/events needs a websocket upgrade");
            var types = EventTypes(ctx);
            await events.StreamAsync(() => ctx.WebSockets.AcceptWebSocketAsync(), types, ctx.RequestAborted);
            return Results.Empty;
        });
    }

    /// <summary>The media type of a backup tarball, out of an export and into an import.</summary>
    public const string BackupContentType = "application/octet-stream";

    /// <summary>
    /// POST /1.0/containers with a backup tarball as its body (as LXD takes one): ?name= and
    /// ?pool= say where it goes, ?compression= how the body is compressed. The tarball is read as it arrives.
    /// </summary>
    private async Task<IResult> ImportBackup(HttpContext ctx)
    {
        if (ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = null;
        // The tar reader reads synchronously, on a thread of its own; the body is its source.
        if (ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpBodyControlFeature>() is { } body) body.AllowSynchronousIO = true;
        var options = new ImportOptions(NullIfEmpty(ctx.Request.Query["name"]), NullIfEmpty(ctx.Request.Query["pool"]), Compression(ctx));
        try
        {
            var imported = await Task.Run(() => containers.ImportAsync(ctx.Request.Body, options, ctx.RequestAborted));
            return Sync(ToApi(imported), 201);
        }
        catch (Exception e) when (e is EngineException or NativeException)
        {
            // The client is still sending: read the rest, so it gets the answer rather than a reset.
            await ctx.Request.Body.CopyToAsync(Stream.Null, ctx.RequestAborted);
            throw;
        }
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static BackupCompression Compression(HttpContext ctx) => ctx.Request.Query["compression"].ToString() switch
    {
        "" or "none" => BackupCompression.None,
        "gzip" => BackupCompression.Gzip,
        "zstd" => BackupCompression.Zstd,
        var other => throw EngineException.Invalid("InvalidRequest", $"compression '{DisplayText.Escape(other)}' is not none, gzip or zstd"),
    };

    /// <summary>A websocket opens with GET over HTTP/1.1 and with CONNECT over HTTP/2 (RFC 8441).</summary>
    private static readonly string[] WebSocketMethods = [HttpMethods.Get, HttpMethods.Connect];

    private static HashSet<string> EventTypes(HttpContext ctx) =>
        ctx.Request.Query["type"].ToString().Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet();

    internal SystemContainerHost HostInfo()
    {
        var all = containers.List();
        var disk = new DriveInfo(options.Engine.StateDir);
        var lxcfs = containers.Lxcfs.State;
        return new SystemContainerHost
        {
            ServerVersion = typeof(RestApi).Assembly.GetName().Version?.ToString() ?? "0",
            Hostname = Environment.MachineName,
            Kernel = KernelRelease.Value,
            CgroupVersion = containers.CgroupVersion,
            Pid = Environment.ProcessId,
            StartedAt = Started,
            StateDir = options.Engine.StateDir,
            StateDirFilesystem = disk.DriveFormat,
            StateDirSize = disk.TotalSize,
            StateDirFree = disk.AvailableFreeSpace,
            Containers = all.Count,
            Running = all.Count(c => c.Status == ContainerStatus.Running),
            Frozen = all.Count(c => c.Status == ContainerStatus.Frozen),
            Images = images.List().Count,
            Networks = containers.Networks.List().Count,
            ContainerConfigKeys = [.. ContainerConfig.Keys, ContainerConfig.UserPrefix, ContainerConfig.EnvironmentPrefix],
            NetworkConfigKeys = [.. NetworkConfig.Keys],
            Lxcfs = lxcfs.Source,
            LxcfsMount = lxcfs.Mount,
            LxcfsPid = lxcfs.Pid,
            LxcfsDetail = lxcfs.Detail,
        };
    }

    private static readonly DateTimeOffset Started = DateTimeOffset.UtcNow;

    // GET /1.0 is also every client's readiness ping: what cannot change is read once.
    private static readonly Lazy<string> KernelRelease = new(() => File.ReadAllText("/proc/sys/kernel/osrelease").Trim());

    private async Task<ImageRecord> BuildBusybox(ImageCreateRequest req, OperationRecord op)
    {
        string tarball = Path.Combine(options.Engine.CacheDir, $".busybox-{Guid.NewGuid():N}.tar");
        try
        {
            op.Report("building busybox rootfs");
            BusyboxImageBuilder.Build(options.Engine.BusyboxPath, tarball);
            return await images.ImportAsync(tarball, req.Alias, req.Description ?? "BusyBox system (busybox init)",
                new Progress<string>(op.Report), op.Cancellation.Token);
        }
        finally
        {
            File.Delete(tarball);
        }
    }

    /// <summary>How many containers the host is judged for: 1 to 100000, by default HostCheck.DefaultContainers.</summary>
    private static int ContainerCount(string? value)
    {
        if (string.IsNullOrEmpty(value)) return HostCheck.DefaultContainers;
        if (!int.TryParse(value, out int n) || n is < 1 or > 100_000)
            throw EngineException.Invalid("InvalidRequest", $"containers '{value}' is not a count from 1 to 100000");
        return n;
    }

    /// <summary>POST /1.0/images from source "container": the work of an operation that publishes NAME or NAME/SNAPSHOT under the alias.</summary>
    private Func<OperationRecord, Task<object?>> PublishRequest(ImageCreateRequest req)
    {
        Require(req.Container, "container");
        Require(req.Alias, "alias");
        string[] parts = req.Container!.Split('/', 2);
        string? snapshot = parts.Length == 2 ? parts[1] : null;
        return async op => ToApi(await containers.PublishAsync(parts[0], snapshot, req.Alias!, req.Description, new Progress<string>(op.Report), op.Cancellation.Token));
    }

    /// <summary>
    /// POST /1.0/containers/{name} with migration: the operation whose secret lets another daemon
    /// pull the stopped container; with live, the running one (its processes dumped by criu).
    /// </summary>
    private IResult MigrationRequest(string name, ContainerPostRequest req)
    {
        if (!string.IsNullOrEmpty(req.Name))
            throw EngineException.Invalid("InvalidRequest", "a migration keeps the container's name here: the target daemon names the container it makes");
        if (req.ExpiresInSeconds is < 1 or > MaxTimeoutSeconds)
            throw EngineException.Invalid("InvalidRequest", $"expires_in_seconds must be from 1 to {MaxTimeoutSeconds}, not {req.ExpiresInSeconds}");
        var c = containers.Get(name);
        bool running = c.Status is ContainerStatus.Running or ContainerStatus.Frozen;
        // Anything else a container may be (in error) is the export's to judge when the stream is fetched.
        if (running && !req.Live)
            throw EngineException.Conflict("ContainerRunning",
                $"container '{name}' is {c.Status.ToString().ToLowerInvariant()}: stop it first, or move it by live migration (live: true, Move-SystemContainer -Live)");
        if (req.Live && !running)
            throw EngineException.Conflict("ContainerNotRunning", $"container '{name}' is {c.Status.ToString().ToLowerInvariant()}: a live move is of a running container; move it without live");
        if (req.Live && !Engine.Spec.ContainerConfig.Parse(c.Config).IsStateful)
            throw EngineException.Invalid("NotStateful", $"container '{name}' cannot move live: it was created without {Engine.Spec.ContainerConfig.Stateful}=true, which criu needs");
        return Async(migrations.Issue(name, !req.InstanceOnly, req.ExpiresInSeconds is int s ? TimeSpan.FromSeconds(s) : MigrationSources.DefaultLifetime, req.Live));
    }

    /// <summary>POST /1.0/containers with a copy source: an operation that copies SOURCE or SOURCE/SNAPSHOT, then starts the copy if asked.</summary>
    private IResult CopyRequest(ContainerCreateRequest req, ContainerSource source)
    {
        if (source.Type == "migration")
        {
            if (req.Start) throw EngineException.Invalid("InvalidRequest", "a migrated container is made stopped; start it once it is here");
            var pull = ContainerPull.Plan(containers, req, source);
            return Async(operations.Start($"Pulling container {req.Name}", Resource(req.Name), async op => ToApi(await pull.RunAsync(containers, op))));
        }
        if (source.Type != "copy")
            throw EngineException.Invalid("InvalidRequest", $"source type '{Engine.Spec.DisplayText.Escape(source.Type ?? "")}' is not supported: use copy or migration, or give an image and no source");
        Require(source.Source, "source.source");
        if (!string.IsNullOrEmpty(req.Image)) throw EngineException.Invalid("InvalidRequest", "give an image or a copy source, not both");
        if (req.Config is { Count: > 0 }) throw EngineException.Invalid("InvalidRequest", "a copy takes its source's config; change it once the copy is made");
        string[] parts = source.Source!.Split('/', 2);
        string? snapshot = parts.Length == 2 ? parts[1] : null;
        return Async(operations.Start($"Copying container {source.Source} to {req.Name}", Resource(req.Name), async op =>
        {
            var made = await containers.CopyAsync(parts[0], req.Name, snapshot, req.StoragePool, source.InstanceOnly, op.Cancellation.Token);
            return ToApi(req.Start ? await containers.StartAsync(req.Name, op.Cancellation.Token, made.Id) : made);
        }, throttled: true));
    }

    private static void Require(string? value, string field)
    {
        if (string.IsNullOrEmpty(value)) throw EngineException.Invalid("InvalidRequest", $"request field '{field}' is required");
    }

    /// <summary>The largest request body: an exec at the engine's limits, JSON-escaped, fits.</summary>
    public const long MaxBodyBytes = 8 * 1024 * 1024;

    /// <summary>The longest wait a request may ask for (a stop's grace time, an operation's wait).</summary>
    public const int MaxTimeoutSeconds = 3600;

    /// <summary>How long an interactive or streamed exec's command runs before its websocket attaches.</summary>
    private static readonly TimeSpan AttachDeadline = TimeSpan.FromSeconds(30);

    /// <summary>Requests are read strictly: a field the daemon does not know is a mistake to report, not to ignore.</summary>
    internal static readonly JsonSerializerOptions RequestJson = new(Wire.Json) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow };

    internal static async Task<T> Body<T>(HttpContext ctx)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(ctx.Request.Body, RequestJson, ctx.RequestAborted)
                ?? throw EngineException.Invalid("InvalidRequest", "request body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw EngineException.Invalid("InvalidRequest", $"request body is not valid: {e.Message}");
        }
    }

    private static Dictionary<string, string[]> Resource(string container) => new() { ["containers"] = [$"/1.0/containers/{container}"] };

    private static Dictionary<string, string[]> Resources(IEnumerable<string> containers) => new() { ["containers"] = [.. containers.Select(c => $"/1.0/containers/{c}")] };

    /// <summary>A state action checked before any container is touched: its name and timeout.</summary>
    private Func<string, Guid, CancellationToken, Task<ContainerView>> StateAction(string action, bool force, int? timeoutSeconds, bool stateful, bool stateless)
    {
        if (timeoutSeconds is < 0 or > MaxTimeoutSeconds)
            throw EngineException.Invalid("InvalidTimeout", $"timeout must be from 0 to {MaxTimeoutSeconds} seconds, not {timeoutSeconds}");
        if (stateful && action != "stop")
            throw EngineException.Invalid("InvalidAction", $"stateful applies to the stop action, not {action} (a start restores a saved state by itself)");
        if (stateless && action != "start")
            throw EngineException.Invalid("InvalidAction", $"stateless applies to the start action, not {action}");
        if (stateful && (force || timeoutSeconds is not null))
            throw EngineException.Invalid("InvalidAction", "a stateful stop neither shuts the container down nor kills it, so it takes no force or timeout");
        TimeSpan? timeout = timeoutSeconds is int t ? TimeSpan.FromSeconds(t) : null;
        return action switch
        {
            "start" => (name, id, ct) => containers.StartAsync(name, ct, id, stateless),
            "stop" => (name, id, ct) => containers.StopAsync(name, force, timeout, ct, id, stateful),
            "restart" => (name, id, ct) => containers.RestartAsync(name, force, timeout, ct, id),
            "freeze" => (name, id, ct) => containers.FreezeAsync(name, ct, id),
            "unfreeze" => (name, id, ct) => containers.ThawAsync(name, ct, id),
            _ => throw EngineException.Invalid("InvalidAction", $"state action '{action}' is not start, stop, restart, freeze or unfreeze"),
        };
    }

    private static ExecRequest ExecRequestOf(ExecCommandRequest req)
    {
        if (req.Command is null || req.Command.Length == 0)
            throw EngineException.Invalid("InvalidCommand", "command must name a program to run");
        if (req.Width is < 1 or > 1000 || req.Height is < 1 or > 1000)
            throw EngineException.Invalid("InvalidArgument", "terminal width and height must be from 1 to 1000");
        return new ExecRequest(req.Command, req.Environment, req.Cwd, req.User, req.Group, req.Interactive, (ushort)req.Width, (ushort)req.Height);
    }

    internal static IResult Sync<T>(T metadata, int status = 200) =>
        Results.Json(new ApiResponse("sync", "Success", 200, Metadata: JsonSerializer.SerializeToElement(metadata, Wire.Json)), Wire.Json, statusCode: status);

    private static IResult Async(OperationRecord op) => new AsyncResponse(op);

    /// <summary>The request's ?wait=: how long its answer may wait for its operation (0: not at all).</summary>
    private static int WaitSeconds(HttpContext ctx) => int.TryParse(ctx.Request.Query["wait"], out int wait) && wait > 0 ? wait : 0;

    /// <summary>
    /// An operation's 202 answer. With ?wait=N it is sent once the operation has ended (or after N
    /// seconds), so a quick operation costs its client no second request for the result.
    /// </summary>
    private sealed class AsyncResponse(OperationRecord op) : IResult
    {
        public async Task ExecuteAsync(HttpContext ctx)
        {
            if (!op.Done.IsCompleted && WaitSeconds(ctx) is int wait and > 0)
                await Task.WhenAny(op.Done, Task.Delay(TimeSpan.FromSeconds(wait), ctx.RequestAborted));
            await Results.Json(new ApiResponse("async", "Operation created", 100, Operation: $"/1.0/operations/{op.Id}",
                Metadata: JsonSerializer.SerializeToElement(op.ToApi(), Wire.Json)), Wire.Json, statusCode: 202).ExecuteAsync(ctx);
        }
    }

    public static SystemContainer ToApi(ContainerView v) => new()
    {
        Name = v.Name, Status = v.Status.ToString(), Image = v.ImageAlias ?? v.ImageFingerprint[..Math.Min(12, v.ImageFingerprint.Length)],
        ImageFingerprint = v.ImageFingerprint, Pid = v.Pid, IPv4 = [.. v.IPv4], IPv6 = [.. v.IPv6], Created = v.Created,
        StartedAt = v.StartedAt, StoppedAt = v.StoppedAt, LastExitCode = v.LastExitCode, LastExitSignal = v.LastExitSignal,
        Privileged = v.Privileged, InitKind = v.InitKind, Config = new Dictionary<string, string>(v.Config),
        Id = v.Id, Error = v.Error, Recovery = v.Recovery, StoragePool = v.StoragePool, Stateful = v.Stateful,
    };

    public static SystemContainerSnapshot ToApi(string container, SnapshotInfo s) => new()
    {
        ContainerName = container, SnapshotName = s.Name, Created = s.Created, ExpiresAt = s.ExpiresAt, Stateful = s.Stateful,
    };

    public static SystemContainerStoragePool ToApi(StoragePoolView v) => new()
    {
        Name = v.Pool.Name, Driver = v.Pool.Driver, Source = v.Pool.Source, Description = v.Pool.Config.GetValueOrDefault("description"),
        UsedBy = [.. v.UsedBy.Select(c => $"/1.0/containers/{c}")], UsedBytes = v.UsedBytes, UsedPartial = v.UsedPartial,
        FreeBytes = v.FreeBytes, TotalBytes = v.TotalBytes, Error = v.Error, Created = v.Pool.Created,
        Config = new Dictionary<string, string>(v.Pool.Config),
    };

    public static SystemContainerStats ToApi(ContainerStats s) => new()
    {
        Name = s.Name, Status = s.Status.ToString(), SampledAt = s.SampledAt, Uptime = s.Uptime, CpuPercent = Math.Round(s.CpuPercent, 2),
        CpuInterval = s.CpuInterval, CpuTimeNanoseconds = s.Cgroup?.CpuUsageNanoseconds ?? 0, CpuUserNanoseconds = s.Cgroup?.CpuUserNanoseconds ?? 0,
        CpuSystemNanoseconds = s.Cgroup?.CpuSystemNanoseconds ?? 0, MemoryUsage = s.Cgroup?.MemoryUsageBytes ?? 0,
        MemoryPeak = s.Cgroup?.MemoryPeakBytes ?? 0, MemoryLimit = s.Cgroup?.MemoryLimitBytes, MemoryCache = s.Cgroup?.MemoryCacheBytes ?? 0,
        MemorySwap = s.Cgroup?.MemorySwapBytes ?? 0, MemoryLimitHits = s.Cgroup?.MemoryLimitHits ?? 0, OomKills = s.Cgroup?.OomKills ?? s.LastRunOomKills,
        Processes = s.Cgroup?.Processes ?? 0, ProcessesLimit = s.Cgroup?.ProcessesLimit,
        Network = [.. s.Network.Select(n => new NetworkInterfaceStats { Name = n.Name, RxBytes = n.RxBytes, RxPackets = n.RxPackets, TxBytes = n.TxBytes, TxPackets = n.TxPackets })],
        NetRxBytes = s.Network.Where(n => n.Name != "lo").Sum(n => n.RxBytes), NetTxBytes = s.Network.Where(n => n.Name != "lo").Sum(n => n.TxBytes),
        DiskUsage = s.DiskUsageBytes, DiskUsagePartial = s.DiskUsagePartial, DiskLimit = s.DiskLimitBytes,
    };

    public static SystemContainerNetwork ToApi(NetworkView n) => new()
    {
        Name = n.Name, IPv4 = n.IPv4, IPv6 = n.IPv6, Nat = n.Nat, Domain = n.Domain, UsedBy = [.. n.UsedBy.Select(c => $"/1.0/containers/{c}")],
        DnsmasqPid = n.DnsmasqPid, Created = n.Created, Config = new Dictionary<string, string>(n.Config),
    };

    public static SystemContainerHostCheck ToApi(HostFinding f) => new()
    {
        Category = f.Category, Name = f.Name, Status = f.Status.ToString(), Value = f.Value, Needed = f.Needed, Detail = f.Detail,
    };

    public static SystemContainerImage ToApi(ImageRecord i) => new()
    {
        Fingerprint = i.Fingerprint, Aliases = [.. i.Aliases], Description = i.Description, Created = i.Created,
        Size = i.Size, InitKind = i.InitKind, DroppedDeviceNodes = [.. i.DroppedDeviceNodes ?? []], DroppedEntries = [.. i.DroppedEntries ?? []],
    };
}

/// <summary>An exec operation's websocket side: set when a client attaches, and when its bridge has finished with the session.</summary>
internal sealed record ExecAttachment(ExecSession Session, TaskCompletionSource Attached, TaskCompletionSource Bridged);
