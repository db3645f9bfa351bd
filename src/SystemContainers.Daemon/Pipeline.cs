using SystemContainers.Api;
using SystemContainers.Engine;

namespace SystemContainers.Daemon;

/// <summary>The middleware both listeners share (the unix socket's and HTTPS's), so both answer alike.</summary>
public static class Pipeline
{
    /// <summary>Websockets, ends on daemon stop, errors as API responses; then gate (HTTPS's trust check), then routing's own answers.</summary>
    public static void UseCommon(WebApplication app, CancellationToken daemonStopping, Func<HttpContext, Func<Task>, Task>? gate = null)
    {
        app.UseWebSockets();
        // Streams (events, terminals) and long polls end when the daemon stops, instead of holding
        // Kestrel's shutdown for its full timeout.
        app.Use(async (context, next) =>
        {
            using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, daemonStopping);
            context.RequestAborted = stopping.Token;
            await next(context);
        });
        app.Use(async (context, next) =>
        {
            try
            {
                if (StepTrace.Enabled) StepTrace.Mark($"request {context.Request.Method} {context.Request.Path}");
                await next(context);
                if (StepTrace.Enabled) StepTrace.Mark($"response {context.Request.Method} {context.Request.Path} {context.Response.StatusCode}");
            }
            catch (Exception e) when (!context.Response.HasStarted)
            {
                DaemonLog.Failure($"{context.Request.Method} {context.Request.Path}", e);
                await ErrorMapping.ToResult(e).ExecuteAsync(context);
            }
        });
        if (gate is not null) app.Use((context, next) => gate(context, () => next(context)));

        // Routing's own answers (no such path, a method the path does not take) carry an error body like every other error.
        app.UseStatusCodePages(async status =>
        {
            var http = status.HttpContext;
            string message = http.Response.StatusCode switch
            {
                404 => $"no such endpoint: {http.Request.Path}",
                405 => $"method {http.Request.Method} is not allowed on {http.Request.Path}",
                _ => $"request failed with status {http.Response.StatusCode}",
            };
            string id = http.Response.StatusCode switch { 404 => "NotFound", 405 => "MethodNotAllowed", _ => "InvalidRequest" };
            await Results.Json(new ApiResponse("error", ErrorCode: http.Response.StatusCode, Error: message, ErrorId: id), Wire.Json,
                statusCode: http.Response.StatusCode).ExecuteAsync(http);
        });
    }
}
